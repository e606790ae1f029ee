"""``dccd backfill``: the core ``backfill`` over consecutive slices of the range (a few
seconds of requests each, or one archive file each), with progress; Ctrl-C (SIGINT)
lets the slice in progress finish and commit (through the backfill's own commit and
coverage path), then says where to resume (``--start last``) and exits 130.

``--archives auto|off|only`` (default: the dataset's catalog ``archives:`` where the
catalog lists it, else auto; ``archive_choice``): where the exchange publishes bulk files,
each planned file is one slice (a daily file is never fetched again per hour of REST
slicing), the REST tail is sliced as before; the summary counts archive files, archive
vs REST rows and fallbacks and names the mode used and where it came from, and an
``only`` run that left windows uncovered says so.
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
from dccd_core.sources.archives.mode import ArchiveMode
from dccd_core.transport.paginate import FUNDING_STEP

from .app import END, ROOT, cli, dataset_arguments
from .archive_choice import choose_archives

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
    files_done: int = 0
    files_total: int = 0
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
        files = ""
        if self.files_total:
            done = self.files_done + p.archive_files_done
            files = f"archive files {done}/{self.files_total}, "
        text = (
            f"{self.key}: {100 * fraction:.1f}%, {files}covered until {iso_datetime(covered)}, "
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


def _slices(
    start_ts: int, end_ts: int, step: int, files: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """``[start_ts, end_ts)`` as consecutive slices: each archive file's window
    (``files``, in order, within the range) is one slice, the rest ``step`` long."""
    out: list[tuple[int, int]] = []
    t = start_ts

    def steps(until: int) -> None:
        nonlocal t
        while t < until:
            b = min(t + step, until)
            out.append((t, b))
            t = b

    for a, b in files:
        a, b = max(a, start_ts), min(b, end_ts)
        if b <= a or a < t:
            continue
        steps(a)
        out.append((a, b))
        t = b
    steps(end_ts)
    return out


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
    files_total: int = 0
    files_done: int = 0
    archive_rows: int = 0
    rest_rows: int = 0
    fallbacks: list[str] = field(default_factory=list)
    uncovered: list[tuple[int, int]] = field(default_factory=list)


async def _run_backfill(
    key: DatasetKey,
    start: str | int,
    end: int | None,
    root: Path | None,
    show: Callable[[float, str, int], None],
    every_s: float,
    concurrency: int,
    archives: ArchiveMode = ArchiveMode.AUTO,
    archive_url: str | None = None,
) -> _Outcome:
    """The backfill of ``[start, end)`` as consecutive ``backfill`` calls over slices
    (each commits and records its coverage the usual way). The first Ctrl-C stops after
    the slice in progress; a second one aborts at once (committed slices stay)."""
    from dccd_core.operations.backfill import (
        _default_start,
        archive_origin_chosen,
        backfill,
        find_origin,
        require_archive,
        require_capability,
    )
    from dccd_core.operations.backfill.reach import (
        refuse_origin_search,
        refuse_unservable,
        rest_history_start,
    )
    from dccd_core.sources.registry import build_archive_reader, build_source
    from dccd_core.storage import Store

    store = Store(root)
    store.check_writable()
    source = build_source(key.exchange)
    reader = None
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
        # before the symbol listing's request; REST's history depth only where no
        # archive files serve the history (they may reach where REST does not)
        require_capability(source, key, None, now, history=False)
        if require_archive(source, key, archives) and (
            archives is ArchiveMode.ONLY or archive_origin_chosen(source, archive_url)
        ):
            reader = build_archive_reader(key.exchange, archive_url=archive_url)
        if reader is None:
            require_capability(source, key, None, now)
        await source.check_symbol(key.symbol)
        # under auto, the oldest ts REST reaches (None: all of it); older windows
        # without a usable file are left uncovered (see backfill.reach)
        rest_from = (
            rest_history_start(source, key, now)
            if reader is not None and archives is ArchiveMode.AUTO
            else None
        )
        if start == "origin":
            if reader is not None:
                refuse_origin_search(source, key, now, "--start origin")
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
        files: list[tuple[int, int]] = []
        if reader is not None and start_ts < end_ts:
            planned = reader.plan_files(key, start_ts, end_ts, now)
            files = [(f.start_ts, f.end_ts) for f in planned]
            overall.files_total = outcome.files_total = len(files)
            if archives is ArchiveMode.AUTO:
                refuse_unservable(source, key, start_ts, end_ts, planned, rest_from)

        def report(p: Any) -> None:
            fraction, text = overall.line(p)
            show(fraction, text, overall.rows + p.rows_fetched)

        for t, b in _slices(start_ts, end_ts, step, files):
            if stop["asked"]:
                outcome.interrupted = True
                break
            if rest_from is not None and b <= rest_from and not _overlaps(files, t, b):
                # neither a file nor REST's history reaches this slice: said, not fetched
                _add_uncovered(outcome.uncovered, t, b)
                outcome.reached_ts = b
                continue
            # no reader under auto: the REST origin is overridden alone, REST only
            mode = archives if reader is not None or archives is ArchiveMode.ONLY else (
                ArchiveMode.OFF
            )
            result = await backfill(key, start=t, end=b, store=store, source=source,
                                    progress=report, concurrency=concurrency,
                                    progress_interval_s=every_s, archives=mode,
                                    archive_reader=reader)
            overall.rows += result.rows_fetched
            overall.requests += result.requests
            overall.files_done += result.archive_files_done
            outcome.rows_fetched += result.rows_fetched
            outcome.rows_new += result.rows_new
            outcome.requests += result.requests
            outcome.files_done += result.archive_files_done
            outcome.archive_rows += result.archive_rows
            outcome.rest_rows += result.rest_rows
            outcome.fallbacks += [str(f) for f in result.fallbacks]
            for a, z in result.uncovered:
                _add_uncovered(outcome.uncovered, a, z)
            outcome.reached_ts = b
        return outcome
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        if reader is not None:
            await reader.aclose()
        await source.aclose()


def _overlaps(files: list[tuple[int, int]], a: int, b: int) -> bool:
    return any(fa < b and fb > a for fa, fb in files)


def _add_uncovered(uncovered: list[tuple[int, int]], a: int, b: int) -> None:
    """The tail's slices: one hole, said once."""
    if uncovered and uncovered[-1][1] == a:
        uncovered[-1] = (uncovered[-1][0], b)
    else:
        uncovered.append((a, b))


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
@click.option(
    "--archives",
    type=click.Choice([m.value for m in ArchiveMode], case_sensitive=False),
    default=None,
    help="auto: the exchange's bulk files first (monthly, daily), REST for the rest and "
    "for any unusable file; off: REST only; only: files only (unusable ones stay holes). "
    "Default: the dataset's archives: in the catalog ($DCCD_CONFIG, else ./dccd.yaml), "
    "else auto. The archive origin: the catalog's archive_url, else "
    "DCCD_<EXCHANGE>_ARCHIVE_URL.",
)
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
    archives: str | None,
    concurrency: int,
    progress_every: float,
    root: Path | None,
) -> None:
    """Fetch a dataset's history into the lake, with progress; Ctrl-C keeps what came."""
    key = DatasetKey.of(exchange, symbol, data_type, span)
    choice = choose_archives(key, archives)
    show, close = _progress_printer(progress_every)
    every = min(progress_every, 0.5) if sys.stdout.isatty() else progress_every
    try:
        outcome = asyncio.run(
            _run_backfill(
                key, start, end, root, show, every, concurrency, choice.mode, choice.archive_url
            )
        )
    finally:
        close()
    if outcome.book_rows is not None:
        click.echo(f"{key}: stored one snapshot ({outcome.book_rows} rows)")
        return
    done = (
        f"{key}: {outcome.rows_fetched:,} rows fetched, {outcome.rows_new:,} new, "
        f"{iso_datetime(outcome.start_ts)} -> {iso_datetime(outcome.reached_ts)}, "
        f"{outcome.requests} requests, {choice.label}"
    )
    if outcome.files_total:
        done += (
            f", archive files {outcome.files_done}/{outcome.files_total} "
            f"({outcome.archive_rows:,} archive rows, {outcome.rest_rows:,} REST rows, "
            f"{len(outcome.fallbacks)} fallbacks)"
        )
    for fallback in outcome.fallbacks:
        click.echo(f"archive fallback: {fallback}", err=True)
    for a, b in outcome.uncovered:
        why = (
            "(--archives only); fetch it with --archives auto"
            if choice.mode is ArchiveMode.ONLY
            else "(no usable archive file, and REST keeps no history this old); "
            "backfill it again once the day's file is published"
        )
        click.echo(
            f"warning: {key} NOT complete: {iso_datetime(a)} -> {iso_datetime(b)} left "
            f"uncovered {why}",
            err=True,
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
