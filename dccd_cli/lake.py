"""The verbs on the lake itself: ``read``, ``inventory``, ``gaps``, ``import-v3``."""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl

from dccd_core.domain import ConfigError, DatasetKey, iso_datetime, now_ns
from dccd_core.storage import DatasetInfo, Store, resolve_range

from .app import END, ROOT, START, cli, dataset_arguments, parse_time

__all__ = ["gaps_cmd", "import_v3_cmd", "inventory_cmd", "read_cmd"]


@cli.command("read")
@dataset_arguments
@START
@END
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "parquet"]),
    default="table",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@ROOT
def read_cmd(
    exchange: str,
    symbol: str,
    data_type: str,
    span: str | None,
    start: int | None,
    end: int | None,
    fmt: str,
    output: Path | None,
    root: Path | None,
) -> None:
    """Print or save rows of one dataset with START <= ts < END."""
    key = DatasetKey.of(exchange, symbol, data_type, span)
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet writes binary data: give a file with -o")
    store = Store(root)
    if not store.has(key):  # an unknown exchange or a dataset never fetched: say which
        from dccd_core.operations.reading import require_dataset

        require_dataset(store, key)
    frame = store.read(key, start, end)
    if fmt == "parquet":
        assert output is not None
        frame.write_parquet(output, compression="zstd")
        click.echo(f"wrote {frame.height} rows to {output}", err=True)
    elif fmt == "csv":
        if output is None:
            click.echo(frame.write_csv(), nl=False)
        else:
            frame.write_csv(output)
            click.echo(f"wrote {frame.height} rows to {output}", err=True)
    else:
        with pl.Config(tbl_rows=20, tbl_cols=-1, tbl_width_chars=200):
            text = f"{key}: {frame.height} rows\n{frame}"
        if output is None:
            click.echo(text)
        else:
            output.write_text(text + "\n", encoding="utf-8")


def _iso(ts: int | None) -> str:
    return iso_datetime(ts) if ts is not None else "-"


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _inventory_lines(infos: list[DatasetInfo]) -> list[str]:
    header = ("exchange", "symbol", "type", "span", "rows", "files", "size", "first", "last")
    rows = [header] + [
        (
            i.key.exchange,
            str(i.key.symbol),
            i.key.data_type.value,
            i.key.span.label if i.key.span else "-",
            f"{i.rows:,}",
            str(i.files),
            _human_bytes(i.bytes),
            _iso(i.first_ts),
            _iso(i.last_ts),
        )
        for i in infos
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


@cli.command("inventory")
@ROOT
def inventory_cmd(root: Path | None) -> None:
    """List every dataset of the lake (rows, files, size, time range)."""
    store = Store(root)
    infos = store.inventory()
    if not infos:
        click.echo(f"no datasets under {store.root}")
        return
    for line in _inventory_lines(infos):
        click.echo(line)


def _duration(ns: int) -> str:
    seconds = ns // 1_000_000_000
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    text = " ".join(p for p in parts if p)
    return text or f"{ns}ns"


@cli.command("gaps")
@dataset_arguments
@click.option(
    "--start",
    callback=parse_time,
    default=None,
    help="Inclusive start (default: first fetched time).",
)
@click.option("--end", callback=parse_time, default=None, help="Exclusive end (default: now).")
@ROOT
def gaps_cmd(
    exchange: str,
    symbol: str,
    data_type: str,
    span: str | None,
    start: str | None,
    end: str | None,
    root: Path | None,
) -> None:
    """List the never-fetched time ranges (holes of coverage) of one dataset.

    Only what has happened counts: the candle still open is never a hole, and the
    stretch from the latest fetch to now is shown apart ("not fetched yet"). A damaged
    period file in the window is an error, as for ``dccd read``.
    """
    key = DatasetKey.of(exchange, symbol, data_type, span)
    start_ts, end_ts = resolve_range(start, end)
    store = Store(root)
    now = now_ns()
    if start_ts is None:
        start_ts = store.coverage(key).start
        if start_ts is None:
            raise ConfigError(f"nothing recorded for {key}: give --start to list the holes")
    if end_ts is None:
        end_ts = max(now, start_ts)
    report = store.hole_report(key, start_ts, end_ts, now_ts=now)
    window = f"[{iso_datetime(start_ts)}, {iso_datetime(end_ts)})"
    if not report.holes:
        click.echo(f"{key}: no holes in {window}")
    else:
        total = sum(e - s for s, e in report.holes)
        click.echo(f"{key}: {len(report.holes)} hole(s), {_duration(total)} missing in {window}")
        for s, e in report.holes:
            click.echo(f"  {iso_datetime(s)}  ->  {iso_datetime(e)}  ({_duration(e - s)})")
    if report.unfetched is not None:
        s, e = report.unfetched
        click.echo(
            f"{key}: not fetched yet since the latest fetch: {iso_datetime(s)} -> "
            f"{iso_datetime(e)} ({_duration(e - s)}; not a hole: the next update or "
            "backfill fetches it)"
        )


@cli.command("import-v3")
@click.argument(
    "path", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="V3_DATA_PATH"
)
@ROOT
def import_v3_cmd(path: Path, root: Path | None) -> None:
    """Merge a dccd v3 data directory into the lake (safe to repeat)."""
    from dccd_core.operations.import_v3 import import_v3

    report = import_v3(
        path, store=Store(root), progress=lambda line: click.echo(f"  {line}", err=True)
    )
    for dataset, rows in sorted(report.datasets.items()):
        click.echo(f"{dataset}: {rows} rows")
    for skipped in report.skipped:
        click.echo(f"skipped {skipped}", err=True)
    click.echo(
        f"imported {report.files} files, {report.rows_read} rows read, "
        f"{report.rows_new} new rows"
    )
