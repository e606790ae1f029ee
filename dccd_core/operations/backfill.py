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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from dccd_core.domain import (
    EARLIEST_TS,
    NS_PER_DAY,
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
from dccd_core.sources.base import Source
from dccd_core.storage import Store, WriteResult, period_of
from dccd_core.transport.paginate import (
    DEFAULT_CONCURRENCY,
    Chunk,
    PageStats,
    clip_rows,
    paginate_candles,
    paginate_trades,
)

__all__ = [
    "BackfillProgress",
    "BackfillResult",
    "backfill",
    "backfill_sync",
    "find_origin",
]

log = logging.getLogger("dccd.backfill")

DEFAULT_CANDLE_LOOKBACK_NS = 30 * NS_PER_DAY
DEFAULT_TRADE_LOOKBACK_NS = NS_PER_DAY
DEFAULT_BOOK_DEPTH = 20
_TRADE_PROBE_NS = NS_PER_DAY
#: chunks (about a page each) fetched ahead of the writer while it commits.
_PREFETCH_CHUNKS = 64
#: rows batched into one ``writer.add`` (fewer small polars operations per page).
_STAGE_ROWS = 20_000

StartLike = Literal["last", "origin"] | TimeLike


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """A progress report; ``windows_*`` count page windows (candles) or time segments
    (trades), ``covered_until_ts`` is how far the committed-or-committing data reaches."""

    key: DatasetKey
    start_ts: int
    end_ts: int
    windows_done: int
    windows_total: int
    covered_until_ts: int | None
    rows_fetched: int
    rows_per_s: float
    eta_s: float | None
    requests: int
    retries: int
    rate_limit_pauses: int
    elapsed_s: float
    #: time of the range the pages fetched so far cover (ns), whichever way it is paged
    done_ns: int = 0

    @property
    def fraction(self) -> float:
        """Share of the time range covered, 0..1: rises page by page (also for trades
        paged by id or newest-first), not window by window."""
        if self.end_ts <= self.start_ts:
            return 0.0 if self.covered_until_ts is None else 1.0
        done_ns = self.done_ns
        if self.covered_until_ts is not None:
            done_ns = max(done_ns, self.covered_until_ts - self.start_ts)
        return min(1.0, max(0.0, done_ns / (self.end_ts - self.start_ts)))

    def __str__(self) -> str:
        until = iso_datetime(self.covered_until_ts) if self.covered_until_ts else "-"
        eta = f"{self.eta_s:.0f}s" if self.eta_s is not None else "?"
        return (
            f"{self.key}: {100 * self.fraction:.1f}% of the time range, "
            f"windows {self.windows_done}/{self.windows_total}, covered until "
            f"{until}, {self.rows_fetched:,} rows ({self.rows_per_s:,.0f}/s), ETA {eta}, "
            f"{self.requests} requests, {self.retries} retries, "
            f"{self.rate_limit_pauses} rate-limit pauses"
        )


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What a backfill did."""

    rows_fetched: int
    rows_new: int
    requests: int
    retries: int
    rate_limit_pauses: int
    start_ts: int
    end_ts: int
    files: tuple[Path, ...]


# -- validation and the time range -------------------------------------------------


def _parse_time(value: TimeLike, what: str) -> int:
    if isinstance(value, str) and value.strip().lower() in ("last", "origin", "now"):
        raise ConfigError(f"{what} {value!r} is not accepted here: use a date, datetime or ns")
    return to_ns(value)


def _require(source: Source, key: DatasetKey, start_ts: int | None, now_ts: int) -> None:
    history = key.data_type is not DataType.BOOK
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


def _default_start(key: DatasetKey, store: Store, end_ts: int) -> int:
    """``last``: after the last stored row, else the coverage's end, else a lookback."""
    candidates: list[int] = []
    last = store.last_ts(key)
    if last is not None:
        # a candle is done once stored; trades sharing the last ms may not all be
        if key.span is not None:
            candidates.append(key.span.floor(last) + key.span.ns)
        else:
            candidates.append(last)
    coverage_end = store.coverage(key).end
    if coverage_end is not None:
        candidates.append(coverage_end)
    if candidates:
        return max(candidates)
    lookback = DEFAULT_CANDLE_LOOKBACK_NS if key.span is not None else DEFAULT_TRADE_LOOKBACK_NS
    return end_ts - lookback


async def find_origin(source: Source, key: DatasetKey, end_ts: int) -> int:
    """The ts of the exchange's first candle/trade of ``key`` before ``end_ts``.

    Trades: the source's direct answer where it has one (Binance: aggregate trade 0).
    Otherwise probe windows of one page (candles) or one day (trades): go back
    exponentially from ``end_ts`` until a window is empty, then binary-search the
    boundary. Assumes no gap longer than a window after the listing (a longer one makes
    the origin found later than the true one, never earlier).
    """
    symbol = key.symbol
    if key.data_type is DataType.TRADES:
        first = await source.fetch_first_trade_ts(symbol)
        if first is not None:
            return first
    if key.span is not None:
        feature = source.capability.feature(DataType.OHLC)
        limit = (feature.page_limit if feature is not None else None) or 500
        width = limit * key.span.ns
        align = key.span.floor
    else:
        width = _TRADE_PROBE_NS
        align = _floor_ms

    async def probe(at: int) -> int | None:
        """The first ts in ``[at, at + width)``, or None."""
        if key.span is not None:
            rows = await source.fetch_candles(symbol, key.span, at, at + width)
        else:
            page = await source.fetch_trades_page(symbol, at, at + width, None)
            rows = page.rows
        rows = clip_rows(rows, at, at + width)
        return int(rows.get_column("ts").min()) if rows.height else None  # type: ignore[arg-type]

    hi = align(end_ts - width)
    found = await probe(hi)
    step = width
    lo: int | None = None
    while lo is None:
        candidate = align(hi - step)
        if candidate < EARLIEST_TS:
            if found is None:
                raise NoCapability(
                    f"{key.exchange} has no {key.data_type} of {key.symbol} before "
                    f"{iso_datetime(end_ts)}"
                )
            candidate = align(EARLIEST_TS)
        first = await probe(candidate)
        if first is None and found is not None:
            lo = candidate
        elif first is not None:
            hi, found = candidate, first
            if candidate <= EARLIEST_TS:
                return first
        elif candidate <= EARLIEST_TS:
            raise NoCapability(
                f"{key.exchange} has no {key.data_type} of {key.symbol} before "
                f"{iso_datetime(end_ts)}"
            )
        else:
            hi = candidate  # still nothing: keep going back (a dead market's tail)
        step *= 2
    assert found is not None
    while hi - lo > width:
        mid = align(lo + (hi - lo) // 2)
        if mid <= lo or mid >= hi:
            break
        first = await probe(mid)
        if first is None:
            lo = mid
        else:
            hi, found = mid, first
    # [lo, lo + width) is empty and hi <= lo + width: nothing lies before ``hi``
    return found


def _floor_ms(ts: int) -> int:
    return ts - ts % 1_000_000


# -- the run -----------------------------------------------------------------------


class _Run:
    """Counters of one backfill and its progress reports."""

    def __init__(
        self,
        key: DatasetKey,
        source: Source,
        start_ts: int,
        end_ts: int,
        progress: Callable[[BackfillProgress], None] | None,
    ) -> None:
        self.key = key
        self.source = source
        self.start_ts = start_ts
        self.end_ts = end_ts
        self.progress = progress
        self.pages = PageStats()
        self.rows = 0
        self.started = time.monotonic()
        self._http_stats = source.http_stats
        self._base = self._http_counts()

    def _http_counts(self) -> tuple[int, int, int]:
        stats = self._http_stats
        if stats is None:
            return (0, 0, 0)
        return (
            int(getattr(stats, "requests", 0)),
            int(getattr(stats, "retries", 0)),
            int(getattr(stats, "rate_limit_pauses", 0)),
        )

    def counts(self) -> tuple[int, int, int]:
        """(requests, retries, rate-limit pauses) since the run began."""
        now = self._http_counts()
        requests = now[0] - self._base[0] if self._http_stats is not None else self.pages.requests
        return requests, now[1] - self._base[1], now[2] - self._base[2]

    def snapshot(self) -> BackfillProgress:
        elapsed = time.monotonic() - self.started
        requests, retries, pauses = self.counts()
        covered = self.pages.covered_until_ts
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        done_ns = self.pages.done_ns
        if covered is not None:
            done_ns = max(done_ns, covered - self.start_ts)
        eta: float | None = None
        if done_ns > 0 and elapsed > 0:
            done = min(1.0, done_ns / max(1, self.end_ts - self.start_ts))
            eta = elapsed * (1 - done) / done
        return BackfillProgress(
            key=self.key,
            start_ts=self.start_ts,
            end_ts=self.end_ts,
            windows_done=self.pages.windows_done,
            windows_total=self.pages.windows_total,
            covered_until_ts=covered,
            rows_fetched=self.rows,
            rows_per_s=rate,
            eta_s=eta,
            requests=requests,
            retries=retries,
            rate_limit_pauses=pauses,
            elapsed_s=elapsed,
            done_ns=done_ns,
        )

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.snapshot())

    async def ticker(self, interval_s: float) -> None:
        """Report at least every ``interval_s``, also while a page is stuck in a pause."""
        while True:
            await asyncio.sleep(interval_s)
            self.report()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _prefetch(chunks: AsyncIterator[Chunk], depth: int) -> AsyncGenerator[Chunk, None]:
    """Run the paginator in its own task, ``depth`` chunks ahead of the writer, so pages
    keep arriving while a commit runs in a worker thread."""
    queue: asyncio.Queue[Chunk | _Failed | None] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for chunk in chunks:
                await queue.put(chunk)
        except Exception as exc:  # handed to the consumer, raised there
            await queue.put(_Failed(exc))
            return
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await _aclose(chunks)


async def _commit_chunks(
    key: DatasetKey,
    store: Store,
    chunks: AsyncIterator[Chunk],
    run: _Run,
    provenance: dict[str, str],
) -> WriteResult:
    """Write chunks in order; commit per finished period or bound; record coverage.

    Commits (merge-writes) run in a worker thread while the paginator keeps fetching.
    """
    commit_rows = store.commit_rows
    commit_s = store.commit_seconds
    committed_until = run.start_ts
    pending_until: int | None = None
    buffered = 0
    buffer_period: str | None = None
    last_commit = time.monotonic()
    # the writer never commits on its own: we commit, then record coverage
    with store.writer(
        key, provenance=provenance, commit_rows=2**62, commit_seconds=math.inf
    ) as writer:

        def commit_sync(until: int) -> None:
            if until > committed_until:  # recorded by the flush, once the rows are durable
                writer.cover(run.start_ts, until)
            writer.flush()

        staged: list[pl.DataFrame] = []  # pages batched before writer.add (less overhead)
        staged_rows = 0

        def unstage() -> None:
            nonlocal staged_rows
            if staged:
                writer.add(staged[0] if len(staged) == 1 else pl.concat(staged))
                staged.clear()
                staged_rows = 0

        async def commit() -> None:
            nonlocal committed_until, pending_until, buffered, buffer_period, last_commit
            if pending_until is None:
                return
            unstage()
            until = pending_until
            await asyncio.to_thread(commit_sync, until)
            committed_until = max(committed_until, until)
            pending_until, buffered, buffer_period = None, 0, None
            last_commit = time.monotonic()

        # aclosing: on a failed commit the prefetch task must stop *now*, not when the
        # generator is garbage-collected, or it keeps iterating the paginator.
        prefetched = contextlib.aclosing(_prefetch(chunks, _PREFETCH_CHUNKS))
        async with prefetched as ahead:
            async for chunk in ahead:
                rows = chunk.rows
                run.rows += rows.height
                if rows.height:
                    first_period = period_of(key, int(rows.get_column("ts")[0]))
                    if buffer_period is not None and first_period != buffer_period and buffered:
                        await commit()  # a storage period is complete: write it once
                    staged.append(rows)
                    staged_rows += rows.height
                    if staged_rows >= _STAGE_ROWS:
                        unstage()
                    buffered += rows.height
                    if buffer_period is None:
                        buffer_period = first_period
                    last_period = period_of(key, int(rows.get_column("ts")[-1]))
                    if last_period != buffer_period:
                        buffer_period = last_period
                pending_until = chunk.covered_until_ts
                if buffered >= commit_rows or time.monotonic() - last_commit >= commit_s:
                    await commit()
                elif buffered == 0 and pending_until - committed_until > 0:
                    # an empty stretch: coverage only, no file to write
                    writer.cover(run.start_ts, pending_until)
                    committed_until, pending_until = pending_until, None
        await commit()
        return writer.result


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
) -> BackfillResult:
    """Fetch ``key``'s data of ``[start, end)`` into ``store``; see the module docstring.

    ``start``: ``"last"`` (after the last stored row; else the end of the recorded
    coverage; else 30 days back for candles, 1 day for trades), ``"origin"`` (the
    exchange's first data), an ISO date/datetime, a datetime or ns.
    ``end``: defaults to now; candle windows stop at the open of the current bar.
    ``source``: a ready source (the caller closes it); default: built from the registry
    and closed here.
    """
    store = store if store is not None else Store()
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    store.check_writable()  # before any request: a read-only lake is said now, not after
    now = now_ns()
    asked_end = _parse_time(end, "end") if end is not None else None
    end_ts = min(asked_end, now) if asked_end is not None else now
    mode: str | None = None
    explicit_start: int | None = None
    if isinstance(start, str) and start.strip().lower() in ("last", "origin"):
        mode = start.strip().lower()
    else:
        explicit_start = _parse_time(start, "start")
        if asked_end is not None and asked_end < explicit_start:
            raise ConfigError(
                f"the backfill of {key} ends ({iso_datetime(asked_end)}) before it starts "
                f"({iso_datetime(explicit_start)}): swap start and end"
            )

    own_source = source is None
    if source is None:
        from dccd_core.sources.registry import build_source

        source = build_source(key.exchange)
    try:
        # -- refuse before any data page ------------------------------------------
        _require(source, key, None, now)
        await source.check_symbol(key.symbol)
        if key.data_type is DataType.BOOK:
            return await _backfill_book(key, store, source, progress)
        if key.span is not None:
            end_ts = min(end_ts, key.span.floor(now))  # never the bar still in progress
        if mode == "origin":
            start_ts = await find_origin(source, key, end_ts)
        elif mode == "last":
            start_ts = _default_start(key, store, end_ts)
        else:
            assert explicit_start is not None
            start_ts = explicit_start
        if key.span is not None:
            _require(source, key, start_ts, now)
        if start_ts >= end_ts:
            return BackfillResult(0, 0, 0, 0, 0, start_ts, max(start_ts, end_ts), ())
        return await _backfill_pages(
            key, store, source, start_ts, end_ts, progress, concurrency, progress_interval_s
        )
    finally:
        if own_source:
            from dccd_core.sources.registry import aclose_source

            await aclose_source(source)


async def _backfill_pages(
    key: DatasetKey,
    store: Store,
    source: Source,
    start_ts: int,
    end_ts: int,
    progress: Callable[[BackfillProgress], None] | None,
    concurrency: int,
    progress_interval_s: float,
) -> BackfillResult:
    run = _Run(key, source, start_ts, end_ts, progress)
    if key.span is not None:
        chunks = paginate_candles(
            source,
            key.symbol,
            key.span,
            start_ts,
            end_ts,
            concurrency=concurrency,
            stats=run.pages,
        )
    else:
        chunks = paginate_trades(
            source, key.symbol, start_ts, end_ts, concurrency=concurrency, stats=run.pages
        )
    provenance = {**source.describe(), "transport": "rest"}
    log.info("backfill %s %s -> %s", key, iso_datetime(start_ts), iso_datetime(end_ts))
    ticker = asyncio.create_task(run.ticker(progress_interval_s)) if progress else None
    try:
        written = await _commit_chunks(key, store, chunks, run, provenance)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await _aclose(chunks)
    run.report()
    requests, retries, pauses = run.counts()
    return BackfillResult(
        rows_fetched=run.rows,
        rows_new=written.new_rows,
        requests=requests,
        retries=retries,
        rate_limit_pauses=pauses,
        start_ts=start_ts,
        end_ts=end_ts,
        files=written.files,
    )


async def _aclose(chunks: AsyncIterator[Chunk]) -> None:
    closer: Any = getattr(chunks, "aclose", None)
    if closer is not None:
        await closer()


async def _backfill_book(
    key: DatasetKey,
    store: Store,
    source: Source,
    progress: Callable[[BackfillProgress], None] | None,
) -> BackfillResult:
    """Books have no history: one snapshot now."""
    run = _Run(key, source, now_ns(), now_ns(), progress)
    rows = await source.fetch_book(key.symbol, _book_depth(source))
    provenance = {**source.describe(), "transport": "rest"}
    written = store.write(key, rows, provenance=provenance)
    run.rows = rows.height
    ts = int(rows.get_column("ts")[0]) if rows.height else run.start_ts
    requests, retries, pauses = run.counts()
    run.report()
    return BackfillResult(
        rows_fetched=rows.height,
        rows_new=written.new_rows,
        requests=requests,
        retries=retries,
        rate_limit_pauses=pauses,
        start_ts=ts,
        end_ts=ts,
        files=written.files,
    )


def backfill_sync(key: DatasetKey, **kwargs: Any) -> BackfillResult:
    """``asyncio.run(backfill(key, **kwargs))`` for scripts and the CLI."""
    return asyncio.run(backfill(key, **kwargs))
