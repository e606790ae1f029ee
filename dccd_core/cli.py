"""The ``dccd`` command: read, inventory, gaps, validate, import-v3 (and, from
``cli_verbs``, symbols, status, backfill).

Every user mistake ends as ONE line on stderr, ``error: <message>``, and exit code 2:
``DccdError`` (bad names, bad times, damaged files), click's usage errors and file
system errors alike; an error that carries several problems (an invalid catalog)
prints one such line per problem. A traceback means a bug in dccd, never a typo.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import polars as pl

from dccd_core.domain import (
    ConfigError,
    DatasetKey,
    DccdError,
    iso_datetime,
    now_ns,
    to_ns,
)
from dccd_core.storage import DatasetInfo, Store, resolve_range

__all__ = ["cli", "main"]

_EXIT_USER_ERROR = 2
_NoArgsIsHelp: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_NeverRaised", (click.UsageError,), {})
)


def _fail(message: str, code: int = _EXIT_USER_ERROR, more: Sequence[str] = ()) -> None:
    """``error: <first line>`` (and one more line per item of ``more``), then exit."""
    for text in (message, *more):
        first = text.strip().splitlines()[0] if text.strip() else "failed"
        click.echo(f"error: {first}", err=True)
    sys.exit(code)


class _DccdGroup(click.Group):
    """A click group whose errors are one line, also under ``CliRunner``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except DccdError as exc:
            problems = list(getattr(exc, "problems", ())) or [str(exc)]
            _fail(problems[0], more=problems[1:])
        except _NoArgsIsHelp as exc:  # bare `dccd` or `dccd read`: show the help
            click.echo(exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            _fail("aborted", 1)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see {exc.ctx.command_path} --help)"
            _fail(exc.format_message() + hint, exc.exit_code)
        except BrokenPipeError:
            sys.stderr.close()  # `dccd read ... | head`: the reader left, nothing to say
            sys.exit(0)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


_ROOT = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Lake root (default: $DCCD_DATA_PATH, else ./data).",
)


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """THE parsing of every time option: ISO date/datetime or ns -> ns (``to_ns``); a
    bad or out-of-range value is a usage error naming the option."""
    if value is None:
        return None
    try:
        return to_ns(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


_SPAN = click.option("--span", default=None, help="Candle span (ohlc only), e.g. 1m, 1h, 1d.")
_START = click.option(
    "--start", callback=_time, default=None, help="Inclusive start: ISO date/datetime or ns."
)
_END = click.option(
    "--end", callback=_time, default=None, help="Exclusive end: ISO date/datetime or ns."
)


@click.group(cls=_DccdGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """dccd: crypto market data in a Parquet lake."""


@cli.command("read")
@click.argument("exchange")
@click.argument("symbol")
@click.argument("data_type")
@_SPAN
@_START
@_END
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "parquet"]),
    default="table",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@_ROOT
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
@_ROOT
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
@click.argument("exchange")
@click.argument("symbol")
@click.argument("data_type")
@_SPAN
@click.option(
    "--start", callback=_time, default=None, help="Inclusive start (default: first fetched time)."
)
@click.option("--end", callback=_time, default=None, help="Exclusive end (default: now).")
@_ROOT
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


@cli.command("validate")
@click.argument("catalog", required=False, type=click.Path(dir_okay=False, path_type=Path))
def validate_cmd(catalog: Path | None) -> None:
    """Check a catalog (default: $DCCD_CONFIG, else ./dccd.yaml)."""
    try:
        from dccd_pipelines.catalog import load_catalog
    except ImportError as exc:
        raise ConfigError(
            f"cannot validate: the catalog loader dccd_pipelines.catalog is not available ({exc})"
        ) from None
    try:
        loaded = load_catalog(os.fspath(catalog) if catalog is not None else None)
    except DccdError:
        raise
    except ValueError as exc:  # e.g. a pydantic ValidationError that slipped through
        raise ConfigError(str(exc)) from exc
    datasets = getattr(loaded, "datasets", loaded)
    count = len(datasets) if hasattr(datasets, "__len__") else 0
    click.echo(f"ok: {count} datasets")


@cli.command("import-v3")
@click.argument(
    "path", type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="V3_DATA_PATH"
)
@_ROOT
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


# the verbs of issue 15 (symbols, status, backfill) live in their own module
from dccd_core import cli_verbs as _cli_verbs  # noqa: E402,F401


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``dccd``); exits 2 on any user error, with one line."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="dccd")


if __name__ == "__main__":
    # ``python -m dccd_core.cli``: run the importable module's group, on which
    # ``cli_verbs`` registered its commands (this ``__main__`` copy has only its own)
    from dccd_core.cli import main as _main

    _main()
