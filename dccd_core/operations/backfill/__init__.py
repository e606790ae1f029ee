"""``backfill``: fetch a dataset's history into the store, in bounded, ordered commits.

What it guarantees:

* Everything that can be refused is refused *before* the first data page: the data
  type / span / history against the source's ``Capability``, the symbol against the
  exchange's market list (``check_symbol``, one metadata request), the time range.
* The still-open candle is never stored as if final: candle windows end at the open of
  the current bar (``span.floor(now)``), so the bar in progress is left for the next run.
* Rows are committed through ``store.writer`` in bounded chunks (a finished storage
  period, ``store.commit_rows`` rows or ``store.commit_seconds``, whichever comes
  first), never held whole; coverage is recorded after each commit, in order, and
  only up to what was committed, including ranges where the exchange had no data.
* ``start="origin"`` finds the exchange's first data by probing (the source's direct
  answer where it has one, else exponential then binary search over page windows),
  never by paging from 1970.
* Order books have no history: a ``book`` backfill stores one snapshot, now.
* History comes archive-first where the exchange publishes bulk files
  (``archives="auto"``, the default): monthly files, then daily files, then REST for
  the recent tail and for any file that cannot be used (``archive_plan``). ``"off"``:
  REST only. ``"only"``: no REST at all; a window no usable file holds is left
  uncovered, logged and listed in ``BackfillResult.uncovered``. With files in play,
  REST's history depth limits only what REST must serve (``reach``): Bybit's trade
  files serve closed days although its REST keeps only the latest trades; a window
  older than REST's reach that no file holds is left uncovered the same way, and a
  request of which no part can be served is refused up front.

The package: this module checks the request and runs it; ``start`` finds where it
begins (``origin`` probing), ``commit_loop`` writes the pages in bounded commits,
``report`` holds the progress and result records, ``archive_setup`` picks the archive
reader, ``reach`` weighs REST's history against the files, ``archive_plan`` mixes
archive files and REST into one chunk stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from dccd_core.domain import (
    NO_REST_HISTORY,
    STREAM_ONLY,
    ConfigError,
    DatasetKey,
    DataType,
    NoCapability,
    TimeLike,
    Transport,
    iso_datetime,
    now_ns,
    to_ns,
)
from dccd_core.sources.archives.base import ArchiveReader
from dccd_core.sources.archives.mode import ArchiveMode, parse_archive_mode
from dccd_core.sources.base import Source
from dccd_core.storage import Store
from dccd_core.storage.archive_ledger import record_archive_files
from dccd_core.transport.paginate import (
    DEFAULT_CONCURRENCY,
    Chunk,
    PageStats,
    paginate_candles,
    paginate_funding,
    paginate_trades,
)

from .archive_plan import ArchivePlanner
from .archive_setup import archive_origin_chosen, archive_reader_for, require_archive
from .commit_loop import commit_chunks
from .reach import (
    refuse_origin_search,
    refuse_unservable,
    rest_gap_hint,
    rest_history_start,
)
from .report import (
    ArchiveFallback,
    BackfillProgress,
    BackfillResult,
    BackfillTracker,
)
from .start import (
    DEFAULT_CANDLE_LOOKBACK_NS,
    DEFAULT_TRADE_LOOKBACK_NS,
    default_start,
    find_origin,
)

__all__ = [
    "DEFAULT_CANDLE_LOOKBACK_NS",
    "DEFAULT_TRADE_LOOKBACK_NS",
    "ArchiveFallback",
    "ArchiveMode",
    "BackfillProgress",
    "BackfillResult",
    "archive_origin_chosen",
    "backfill",
    "backfill_sync",
    "find_origin",
    "require_archive",
    "require_capability",
    "rest_chunks",
]

log = logging.getLogger("dccd.backfill")

DEFAULT_BOOK_DEPTH = 20

StartLike = Literal["last", "origin"] | TimeLike

#: the name ``dccd_core.cli_verbs`` imports
_default_start = default_start


# -- validation and the time range -------------------------------------------------


def _parse_time(value: TimeLike, what: str) -> int:
    if isinstance(value, str) and value.strip().lower() in ("last", "origin", "now"):
        raise ConfigError(f"{what} {value!r} is not accepted here: use a date, datetime or ns")
    return to_ns(value)


def require_capability(
    source: Source, key: DatasetKey, start_ts: int | None, now_ts: int, *, history: bool = True
) -> None:
    """Refuse, before any request, a data type, span or history the source cannot serve
    (``history=False``: the data type and span only, REST's depth being checked later)."""
    history = history and key.data_type is not DataType.BOOK
    source.capability.require(
        key.data_type,
        Transport.REST,
        span=key.span,
        start_ts=start_ts,
        now_ts=now_ts,
        history=history,
    )


def _book_depth(source: Source) -> int:
    feature = source.capability.feature(DataType.BOOK)
    depths = feature.book_depths if feature is not None else ()
    if not depths or DEFAULT_BOOK_DEPTH in depths:
        return DEFAULT_BOOK_DEPTH
    larger = [d for d in depths if d >= DEFAULT_BOOK_DEPTH]
    return min(larger) if larger else max(depths)


async def backfill(
    key: DatasetKey,
    *,
    start: StartLike = "last",
    end: TimeLike | None = None,
    store: Store | None = None,
    source: Source | None = None,
    progress: Callable[[BackfillProgress], None] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress_interval_s: float = 2.0,
    archives: ArchiveMode | str = ArchiveMode.AUTO,
    archive_url: str | None = None,
    archive_reader: ArchiveReader | None = None,
) -> BackfillResult:
    """Fetch ``key``'s data of ``[start, end)`` into ``store``; see the module docstring.

    ``start``: ``"last"`` (after the last stored row; else the end of the recorded
    coverage; else 30 days back for candles, 1 day for trades), ``"origin"`` (the
    exchange's first data), an ISO date/datetime, a datetime or ns.
    ``end``: defaults to now; candle windows stop at the open of the current bar.
    ``source``: a ready source (the caller closes it); default: built from the registry
    and closed here.
    ``archives``: ``auto``/``off``/``only`` (see the module docstring).
    ``archive_reader``: a ready archive reader (the caller closes it). Default: built
    from the registry (``archive_url``, else ``DCCD_<EXCHANGE>_ARCHIVE_URL``, else the
    documented origin) and closed here; see ``archive_origin_chosen`` for when the
    documented origin is used.
    """
    if key.data_type in STREAM_ONLY:  # before anything else: no source, no lake touched
        raise NoCapability(f"{key}: {NO_REST_HISTORY}")
    mode = parse_archive_mode(archives)
    store = store if store is not None else Store()
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    store.check_writable()  # before any request: a read-only lake is said now, not after
    now = now_ns()
    asked_end = _parse_time(end, "end") if end is not None else None
    end_ts = min(asked_end, now) if asked_end is not None else now
    start_mode: str | None = None
    explicit_start: int | None = None
    if isinstance(start, str) and start.strip().lower() in ("last", "origin"):
        start_mode = start.strip().lower()
    else:
        explicit_start = _parse_time(start, "start")
        if asked_end is not None and asked_end < explicit_start:
            raise ConfigError(
                f"the backfill of {key} ends ({iso_datetime(asked_end)}) before it starts "
                f"({iso_datetime(explicit_start)}): swap start and end"
            )

    async def run_on(source: Source) -> BackfillResult:
        # -- refuse before any data page ------------------------------------------
        end = end_ts
        use_archives = key.data_type is not DataType.BOOK and require_archive(source, key, mode)
        # with archive files in play, REST's history depth is checked against the part
        # REST must serve once the files are planned (``reach``), not here
        require_capability(source, key, None, now, history=not use_archives)
        reader, owned_reader = None, None
        if use_archives:  # building a reader makes no request
            reader, owned_reader = archive_reader_for(
                key, source, mode, archive_reader, archive_url
            )
        checking: asyncio.Task[None] | None = None
        try:
            if reader is None:  # REST alone after all: refuse missing history now, before
                require_capability(source, key, None, now)  # even the symbol listing
            if reader is not None and start_mode != "origin":
                # asked while the planner requests the first archive files (one round
                # trip less before the first row); the planner waits for the answer
                # before any row or REST request, so an unknown symbol stores nothing
                checking = asyncio.create_task(source.check_symbol(key.symbol))
            else:
                await source.check_symbol(key.symbol)
            if key.data_type is DataType.BOOK:
                return await _backfill_book(key, store, source, progress)
            if key.span is not None:
                end = min(end, key.span.floor(now))  # never the bar still in progress
            if start_mode == "origin":
                if reader is not None:
                    refuse_origin_search(source, key, now, "start=origin")
                start_ts = await find_origin(source, key, end)
            elif start_mode == "last":
                start_ts = default_start(key, store, end)
            else:
                assert explicit_start is not None
                start_ts = explicit_start
            if start_ts >= end:
                if checking is not None:
                    await checking
                return BackfillResult(0, 0, 0, 0, 0, start_ts, max(start_ts, end), ())
            if reader is None:  # REST alone: its history depth (candle count, days)
                require_capability(source, key, start_ts, now)
                return await _backfill_pages(
                    key, store, source, start_ts, end, progress, concurrency,
                    progress_interval_s,
                )
            rest_from = None if mode is ArchiveMode.ONLY else rest_history_start(source, key, now)
            if mode is ArchiveMode.AUTO:
                files = reader.plan_files(key, start_ts, end, now)
                try:
                    refuse_unservable(source, key, start_ts, end, files, rest_from)
                except NoCapability:
                    if checking is not None:
                        await checking  # an unknown symbol is said first, as before
                    raise
            return await _backfill_pages(
                key,
                store,
                source,
                start_ts,
                end,
                progress,
                concurrency,
                progress_interval_s,
                archive=_ArchiveRun(
                    reader, mode, now, rest_from, rest_gap_hint(source, key), checking
                ),
            )
        finally:
            if checking is not None:
                if not checking.done():
                    checking.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await checking  # its error is raised where it was awaited, if at all
            if owned_reader is not None:
                await owned_reader.aclose()

    if source is not None:
        return await run_on(source)
    from dccd_core.sources.registry import build_source

    async with build_source(key.exchange) as owned:
        return await run_on(owned)


def rest_chunks(
    key: DatasetKey,
    source: Source,
    start_ts: int,
    end_ts: int,
    concurrency: int,
    stats: PageStats,
) -> AsyncGenerator[Chunk, None]:
    """The REST paginator of ``key`` over ``[start_ts, end_ts)``."""
    if key.data_type is DataType.FUNDING:
        return paginate_funding(
            source, key.symbol, start_ts, end_ts, concurrency=concurrency, stats=stats
        )
    if key.span is not None:
        return paginate_candles(
            source,
            key.symbol,
            key.span,
            start_ts,
            end_ts,
            concurrency=concurrency,
            stats=stats,
            data_type=key.data_type,
        )
    return paginate_trades(
        source, key.symbol, start_ts, end_ts, concurrency=concurrency, stats=stats
    )


@dataclass(frozen=True, slots=True)
class _ArchiveRun:
    """What the archive planner of one run needs beyond the REST side."""

    reader: ArchiveReader
    mode: ArchiveMode
    now_ts: int
    #: the oldest ts REST reaches (None: all history; ``archives: only``: unused)
    rest_from_ts: int | None
    rest_gap: str
    #: the symbol check still under way (the planner awaits it before any row)
    ready: Awaitable[None] | None = None


async def _backfill_pages(
    key: DatasetKey,
    store: Store,
    source: Source,
    start_ts: int,
    end_ts: int,
    progress: Callable[[BackfillProgress], None] | None,
    concurrency: int,
    progress_interval_s: float,
    archive: _ArchiveRun | None = None,
) -> BackfillResult:
    run = BackfillTracker(key, source, start_ts, end_ts, progress)
    provenance = {**source.describe(), "transport": "rest"}
    after_commit: Callable[[int], None] | None = None
    chunks: AsyncGenerator[Chunk, None]
    if archive is None:
        chunks = rest_chunks(key, source, start_ts, end_ts, concurrency, run.pages)
    else:
        reader = archive.reader
        planner = ArchivePlanner(
            key,
            reader,
            archive.mode,
            run,
            archive.now_ts,
            lambda a, b, stats: rest_chunks(key, source, a, b, concurrency, stats),
            rest_from_ts=archive.rest_from_ts,
            rest_gap=archive.rest_gap,
            ready=archive.ready,
        )
        chunks = planner.chunks()
        provenance["archive_url"] = reader.origin

        def after_commit(until_ts: int) -> None:
            record_archive_files(store.root, key, planner.committed(until_ts))

    log.info("backfill %s %s -> %s", key, iso_datetime(start_ts), iso_datetime(end_ts))
    ticker = asyncio.create_task(run.ticker(progress_interval_s)) if progress else None
    try:
        written = await commit_chunks(
            key, store, chunks, run, provenance, after_commit=after_commit
        )
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await chunks.aclose()
    run.report()
    result = run.result(written, start_ts, end_ts)
    if result.uncovered:
        log.warning(
            "%s: NOT complete: %d window(s) left uncovered, first %s -> %s",
            key,
            len(result.uncovered),
            iso_datetime(result.uncovered[0][0]),
            iso_datetime(result.uncovered[0][1]),
        )
    return result


async def _backfill_book(
    key: DatasetKey,
    store: Store,
    source: Source,
    progress: Callable[[BackfillProgress], None] | None,
) -> BackfillResult:
    """Books have no history: one snapshot now."""
    run = BackfillTracker(key, source, now_ns(), now_ns(), progress)
    rows = await source.fetch_book(key.symbol, _book_depth(source))
    provenance = {**source.describe(), "transport": "rest"}
    written = store.write(key, rows, provenance=provenance)
    run.rows = rows.height
    ts = int(rows.get_column("ts")[0]) if rows.height else run.start_ts
    result = run.result(written, ts, ts)
    run.report()
    return result


def backfill_sync(key: DatasetKey, **kwargs: Any) -> BackfillResult:
    """``asyncio.run(backfill(key, **kwargs))`` for scripts and the CLI."""
    return asyncio.run(backfill(key, **kwargs))
