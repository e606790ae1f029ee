"""``dccd backfill``: the core ``backfill`` over consecutive slices of the range (a few
seconds of requests each), with progress; Ctrl-C (SIGINT) lets the slice in progress
finish and commit (through the backfill's own commit and coverage path), then says
where to resume (``--start last``) and exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from dccd_core.domain import (
    NS_PER_DAY,
    ConfigError,
    DatasetKey,
    DataType,
    iso_datetime,
    now_ns,
    to_ns,
)
from dccd_core.transport.paginate import FUNDING_STEP

from .app import END, ROOT, cli, dataset_arguments

__all__ = ["EXIT_INTERRUPTED", "backfill_cmd"]

EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT
TRADE_SLICE_NS = NS_PER_DAY // 24


def _start_option(ctx: click.Context, param: click.Parameter, value: str) -> str | int:
    text = value.strip().lower()
    if text in ("last", "origin"):
        return text
    try:
        return to_ns(value)
    except ConfigError as exc:
        raise click.BadParameter(f"{exc} (or last, origin)", ctx, param) from None


@dataclass
class _Overall:
    """Progress over the whole run, from the per-slice reports of ``backfill``."""

    key: DatasetKey
    start_ts: int
    end_ts: int
    rows: int = 0
    requests: int = 0
    started: float = field(default_factory=time.monotonic)

    def fraction(self, covered_ts: int) -> float:
        span = max(1, self.end_ts - self.start_ts)
        return min(1.0, max(0.0, (covered_ts - self.start_ts) / span))

    def line(self, p: Any) -> tuple[float, str]:
        covered = p.covered_until_ts if p.covered_until_ts is not None else p.start_ts
        covered = max(covered, p.start_ts + p.done_ns)
        fraction = self.fraction(covered)
        rows = self.rows + p.rows_fetched
        elapsed = time.monotonic() - self.started
        eta = f"{elapsed * (1 - fraction) / fraction:.0f}s" if fraction > 0 else "?"
        text = (
            f"{self.key}: {100 * fraction:.1f}%, covered until {iso_datetime(covered)}, "
            f"{rows:,} rows, {self.requests + p.requests} requests, ETA {eta}"
        )
        return fraction, text


def _progress_printer(
    every_s: float,
) -> tuple[Callable[[float, str, int], None], Callable[[], None]]:
    """(show(fraction, text, rows), close): a rich bar on a terminal when rich is
    installed, else a plain line on stderr at most every ``every_s``."""
    if sys.stdout.isatty():
        try:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            pass
        else:
            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TextColumn("{task.fields[rows]} rows"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            task: dict[str, Any] = {}

            def update(fraction: float, text: str, rows: int) -> None:
                if not task:
                    bar.start()
                    task["id"] = bar.add_task(text.split(":")[0], total=1.0, rows="0")
                bar.update(task["id"], completed=fraction, rows=f"{rows:,}")

            return update, bar.stop

    last = [0.0]

    def line(fraction: float, text: str, rows: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or fraction >= 1.0:
            last[0] = now
            click.echo(f"progress: {text}", err=True)

    return line, lambda: None


def _slice_ns(source: Any, key: DatasetKey, concurrency: int) -> int:
    """One slice of the run: 4 rounds of ``concurrency`` candle pages, or an hour of
    trades. Ctrl-C lets the slice in progress finish, so it answers within seconds."""
    feature = source.capability.feature(key.data_type)
    limit = feature.page_limit if feature is not None and feature.page_limit else 500
    if key.data_type is DataType.FUNDING:  # pages of ``limit`` hours (the paginator's)
        return FUNDING_STEP.ns * limit * concurrency * 4
    if key.span is None:
        return TRADE_SLICE_NS
    return key.span.ns * limit * concurrency * 4


@dataclass
class _Outcome:
    key: DatasetKey
    start_ts: int
    end_ts: int
    reached_ts: int
    rows_fetched: int = 0
    rows_new: int = 0
    requests: int = 0
    interrupted: bool = False
    book_rows: int | None = None


async def _run_backfill(
    key: DatasetKey,
    start: str | int,
    end: int | None,
    root: Path | None,
    show: Callable[[float, str, int], None],
    every_s: float,
    concurrency: int,
) -> _Outcome:
    """The backfill of ``[start, end)`` as consecutive ``backfill`` calls over slices
    (each commits and records its coverage the usual way). The first Ctrl-C stops after
    the slice in progress; a second one aborts at once (committed slices stay)."""
    from dccd_core.operations.backfill import (
        _default_start,
        backfill,
        find_origin,
        require_capability,
    )
    from dccd_core.sources.registry import build_source
    from dccd_core.storage import Store

    store = Store(root)
    store.check_writable()
    source = build_source(key.exchange)
    loop = asyncio.get_running_loop()
    stop = {"asked": False}

    def on_sigint() -> None:
        if stop["asked"]:  # a second Ctrl-C: abort now
            loop.remove_signal_handler(signal.SIGINT)
            raise KeyboardInterrupt
        stop["asked"] = True
        click.echo(
            "interrupted: finishing the slice in progress and committing it "
            "(Ctrl-C again to abort)",
            err=True,
        )

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        if key.data_type is DataType.BOOK:
            result = await backfill(key, store=store, source=source)
            ts = result.start_ts
            return _Outcome(
                key,
                ts,
                ts,
                ts,
                result.rows_fetched,
                result.rows_new,
                result.requests,
                book_rows=result.rows_fetched,
            )
        now = now_ns()
        end_ts = min(end, now) if end is not None else now
        if key.span is not None:
            end_ts = min(end_ts, key.span.floor(now))  # never the bar still in progress
        require_capability(source, key, None, now)  # before the symbol listing's request
        await source.check_symbol(key.symbol)
        if start == "origin":
            start_ts = await find_origin(source, key, end_ts)
        elif start == "last":
            start_ts = _default_start(key, store, end_ts)  # as backfill(start="last")
        else:
            assert isinstance(start, int)
            start_ts = start
            if end is not None and end < start_ts:
                raise ConfigError(
                    f"--end {iso_datetime(end)} is before --start {iso_datetime(start_ts)}"
                )
        outcome = _Outcome(key, start_ts, end_ts, start_ts)
        overall = _Overall(key, start_ts, max(start_ts, end_ts))
        step = _slice_ns(source, key, concurrency)

        def report(p: Any) -> None:
            fraction, text = overall.line(p)
            show(fraction, text, overall.rows + p.rows_fetched)

        t = start_ts
        while t < end_ts:
            if stop["asked"]:
                outcome.interrupted = True
                break
            b = min(t + step, end_ts)
            result = await backfill(key, start=t, end=b, store=store, source=source,
                                    progress=report, concurrency=concurrency,
                                    progress_interval_s=every_s)
            overall.rows += result.rows_fetched
            overall.requests += result.requests
            outcome.rows_fetched += result.rows_fetched
            outcome.rows_new += result.rows_new
            outcome.requests += result.requests
            t = outcome.reached_ts = b
        return outcome
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        await source.aclose()


@cli.command("backfill")
@dataset_arguments
@click.option(
    "--start",
    callback=_start_option,
    default="last",
    show_default=True,
    help="last (where the stored data ends), origin (the exchange's first data), or a "
    "date/datetime/ns.",
)
@END
@click.option("--concurrency", type=click.IntRange(min=1), default=6, show_default=True)
@click.option(
    "--progress-every",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds between progress lines when not on a terminal.",
)
@ROOT
def backfill_cmd(
    exchange: str,
    symbol: str,
    data_type: str,
    span: str | None,
    start: str | int,
    end: int | None,
    concurrency: int,
    progress_every: float,
    root: Path | None,
) -> None:
    """Fetch a dataset's history into the lake, with progress; Ctrl-C keeps what came."""
    key = DatasetKey.of(exchange, symbol, data_type, span)
    show, close = _progress_printer(progress_every)
    every = min(progress_every, 0.5) if sys.stdout.isatty() else progress_every
    try:
        outcome = asyncio.run(_run_backfill(key, start, end, root, show, every, concurrency))
    finally:
        close()
    if outcome.book_rows is not None:
        click.echo(f"{key}: stored one snapshot ({outcome.book_rows} rows)")
        return
    done = (
        f"{key}: {outcome.rows_fetched:,} rows fetched, {outcome.rows_new:,} new, "
        f"{iso_datetime(outcome.start_ts)} -> {iso_datetime(outcome.reached_ts)}, "
        f"{outcome.requests} requests"
    )
    if outcome.interrupted:
        command = f"dccd backfill {exchange} {symbol} {data_type}"
        command += f" --span {span}" if span else ""
        command += f" --end {iso_datetime(end)}" if end is not None else ""
        command += f" --root {root}" if root is not None else ""
        click.echo(done)
        click.echo(
            f"interrupted: {key} committed up to {iso_datetime(outcome.reached_ts)}; "
            f"resume with: {command} --start last",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    click.echo(done)
