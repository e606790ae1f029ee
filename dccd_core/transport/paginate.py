"""Paginators: turn a source's page methods into an ordered stream of complete chunks.

Paging lives here once, not in the sources (see ``dccd_core.sources.base``). The
paginators hold no store: they yield ``Chunk``s in time order and the caller commits
them, recording coverage up to ``chunk.covered_until_ts`` once a chunk is written.

Candles are paged by *deterministic* windows of ``page_limit`` bars, fetched
concurrently (bounded in-flight) and yielded in order. Because the windows are fixed
in advance, a short or empty page just means the exchange has holes there; it never
ends the backfill early, and the number of requests is exactly the number of windows.

Trades from a source with consecutive ids that can address a page by id
(``cursor_at_trade_id``, Binance ``fromId``) are paged in blocks of exactly one page of
ids after the window's first (by time) page, fetched concurrently and yielded in
order, like candle windows: no seam costs a request, and a page reaching ``end_ts``
or coming back short (the newest trade) ends the window.

Other sources' trades are paged by the source's cursor. A long window is split into time segments
that are drained concurrently, each by its own cursor, until it reaches where the
next one begins (rows clipped to the segment, so seams neither lose nor duplicate
same-millisecond trades). Segments are split adaptively, only when one is estimated
(from its own pages) to hold at least ``2 * min_split_pages`` pages: each seam costs
at most one extra page, so the requests stay within ~1/min_split_pages of the
minimum. Only the source's cursor (``next_cursor=None``) or, for forward paging, a
row at or past the segment's end, ends a segment: an empty page never does. Where
``source.sequential_trade_ids``, ids must be consecutive across every seam and page;
a gap raises ``UnexpectedPayload`` rather than silently losing trades.

Every trade walk ends, whatever the exchange answers: a page must bring a trade of the
window past the walk's frontier, or be empty with a cursor not asked since the walk
last moved. A cursor that comes back raises ``PagingStalled`` at once; pages that hold
trades but none new (the same page again, pages dated outside the window) raise it after
``MAX_IDLE_PAGES`` in a row. Candle windows are fixed in advance, so they always end.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from dccd_core.domain import (
    NS_PER_MS,
    DataType,
    IdEdges,
    PageDirection,
    PagingStalled,
    Span,
    Symbol,
    UnexpectedPayload,
    check_trade_id_order,
    iso_datetime,
)

from .pages import PageSource, TradePage

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_IDLE_PAGES",
    "Chunk",
    "PageStats",
    "candle_windows",
    "clip_rows",
    "paginate_candles",
    "paginate_trades",
]

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 6
_DEFAULT_PAGE_LIMIT = 500
#: answered pages held waiting for an earlier one, per request slot
_AHEAD = 4


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows in time order; every row of ``[start_ts, covered_until_ts)`` is in this chunk
    or an earlier one, so coverage may be recorded up to ``covered_until_ts`` once it is
    committed. ``rows`` may be empty (a quiet range is still a covered range)."""

    rows: pl.DataFrame
    start_ts: int
    covered_until_ts: int


@dataclass(slots=True)
class PageStats:
    """What a paginator did so far (read by progress reports)."""

    requests: int = 0
    pages: int = 0
    windows_total: int = 0
    windows_done: int = 0
    segments: int = 0
    covered_until_ts: int | None = None
    #: how much of the window's time the pages fetched so far cover (ns), whichever
    #: way it is paged (backward paging covers ``[x, end)``, not a prefix)
    done_ns: int = 0
    #: rows dropped as replays of trades already delivered (``TradePage.replayed``)
    replayed: int = 0


def candle_windows(
    start_ts: int, end_ts: int, span: Span, page_limit: int
) -> list[tuple[int, int]]:
    """Windows ``[a, b)`` of at most ``page_limit`` bars covering the bars opening in
    ``[start_ts, end_ts)``; the first starts at the first bar open >= ``start_ts``."""
    if page_limit <= 0:
        raise ValueError("page_limit must be positive")
    floor = span.floor(start_ts)
    first = floor if floor == start_ts else floor + span.ns
    step = page_limit * span.ns
    return [(a, min(a + step, end_ts)) for a in range(first, end_ts, step)]


def clip_rows(rows: pl.DataFrame, start_ts: int, end_ts: int) -> pl.DataFrame:
    """The rows with ``start_ts <= ts < end_ts`` (a slice when ``ts`` is sorted)."""
    if rows.height == 0:
        return rows
    ts = rows.get_column("ts")
    if ts.is_sorted():
        if ts[0] >= start_ts and ts[-1] < end_ts:
            return rows
        values = ts.to_numpy()
        lo = int(np.searchsorted(values, start_ts, side="left"))
        hi = int(np.searchsorted(values, end_ts, side="left"))
        return rows.slice(lo, max(0, hi - lo))
    return rows.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))


def _page_limit(source: PageSource, data_type: DataType) -> int:
    feature = source.capability.feature(data_type)
    if feature is not None and feature.page_limit:
        return feature.page_limit
    return _DEFAULT_PAGE_LIMIT


async def _cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel the page tasks still running and collect *every* task's outcome, the
    finished ones too: a look-ahead page that failed while an earlier one was being
    raised must not surface later as "Task exception was never retrieved"."""
    every = list(tasks)
    for task in every:
        if not task.done():
            task.cancel()
    if every:
        await asyncio.gather(*every, return_exceptions=True)


# -- candles -----------------------------------------------------------------------


async def paginate_candles(
    source: PageSource,
    symbol: Symbol,
    span: Span,
    start_ts: int,
    end_ts: int,
    *,
    page_limit: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    stats: PageStats | None = None,
) -> AsyncIterator[Chunk]:
    """Yield one ``Chunk`` per window, in order, fetching up to ``concurrency`` ahead."""
    limit = page_limit or _page_limit(source, DataType.OHLC)
    windows = candle_windows(start_ts, end_ts, span, limit)
    stats = stats if stats is not None else PageStats()
    stats.windows_total = len(windows)
    pending: collections.deque[tuple[int, int, asyncio.Task[pl.DataFrame]]] = collections.deque()
    todo = iter(windows)

    slots = max(1, concurrency)

    def launch() -> None:
        # ``slots`` requests in flight; answered pages wait for their turn (at most
        # ``_AHEAD`` x slots held), so one slow page does not idle the other slots
        running = sum(1 for _, _, t in pending if not t.done())
        while running < slots and len(pending) < _AHEAD * slots:
            window = next(todo, None)
            if window is None:
                return
            a, b = window
            pending.append((a, b, asyncio.ensure_future(source.fetch_candles(symbol, span, a, b))))
            stats.requests += 1
            running += 1

    try:
        launch()
        while pending:
            head = pending[0][2]
            if not head.done():
                running = [t for _, _, t in pending if not t.done()]
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                launch()
                continue
            a, b, task = pending.popleft()
            rows = task.result()
            launch()
            stats.pages += 1
            stats.windows_done += 1
            rows = clip_rows(rows, a, b)
            if rows.height > 1:
                rows = rows.unique(subset="ts", keep="last", maintain_order=True).sort("ts")
            stats.covered_until_ts = b
            stats.done_ns = max(stats.done_ns, b - start_ts)
            yield Chunk(rows, a, b)
    finally:
        await _cancel_all(t for _, _, t in pending)


# -- trades ------------------------------------------------------------------------


@dataclass(eq=False)
class _Segment:
    start: int
    end: int
    cursor: object | None = None
    pos_ts: int = 0
    pages: int = 0
    busy: bool = False
    done: bool = False
    buffer: collections.deque[Chunk] = field(default_factory=collections.deque)
    buffered_rows: int = 0
    tail_ts: int | None = None
    tail_ids: set[str] = field(default_factory=set)
    advance: _Advance | None = None
    #: paging backward: the oldest ts of the window reached so far
    low_ts: int | None = None

    def __post_init__(self) -> None:
        self.pos_ts = self.start

    def done_ns(self) -> int:
        """How much of the segment's time its pages so far cover (either direction)."""
        if self.done:
            return self.end - self.start
        if self.low_ts is not None:
            return self.end - self.low_ts
        return self.pos_ts - self.start

    def remaining_pages(self) -> float:
        """Pages left, estimated from this segment's own pace (0 when unknown)."""
        if self.pages == 0 or self.pos_ts <= self.start or self.done:
            return 0.0
        return self.pages * (self.end - self.pos_ts) / (self.pos_ts - self.start)


def _dedup_page(seg: _Segment, rows: pl.DataFrame) -> pl.DataFrame:
    """Drop trades the segment already has: pages that overlap at the boundary ms.

    Rows are in time order; only rows at or before the last ms already seen can be
    repeats, so the common case (a page that starts later) costs no filtering.
    """
    if rows.height == 0:
        return rows
    ts = rows.get_column("ts")
    if seg.tail_ts is not None and int(ts[0]) <= seg.tail_ts:
        rows = rows.filter(~pl.col("trade_id").is_in(list(seg.tail_ids)))
        if rows.height == 0:
            return rows
        ts = rows.get_column("ts")
    ids = rows.get_column("trade_id")
    if ids.n_unique() != rows.height:
        rows = rows.unique(subset="trade_id", keep="first", maintain_order=True)
        ts, ids = rows.get_column("ts"), rows.get_column("trade_id")
    last_ts = int(ts[-1])
    if ts.is_sorted():
        first_at_last = int(np.searchsorted(ts.to_numpy(), last_ts, side="left"))
        tail = ids.slice(first_at_last).to_list()
    else:
        last_ts = int(ts.max())  # type: ignore[arg-type]
        tail = [i for i, t in zip(ids.to_list(), ts.to_list(), strict=True) if t == last_ts]
    if last_ts == seg.tail_ts:
        seg.tail_ids.update(tail)
    else:
        seg.tail_ts, seg.tail_ids = last_ts, set(tail)
    return rows


#: consecutive pages holding trades but none new to the walk before it is declared stuck
MAX_IDLE_PAGES = 8


class _Advance:
    """Proves that a walk of pages (one segment, or one id-paged window) moves on.

    Every page must either bring a trade of the window past the walk's frontier (the
    newest ts seen paging forward, the oldest paging backward, and the ids seen at that
    ts), or be empty with a cursor not asked since the walk last moved (a quiet stretch
    walked by time). A cursor that comes back is a loop: refused at once. Pages that hold
    trades but none new (the same page again, pages dated outside the window) are
    refused after ``MAX_IDLE_PAGES`` in a row. So every paging mode ends after a bounded
    number of requests, whatever the exchange answers.
    """

    def __init__(self, exchange: str, symbol: Symbol, forward: bool) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.forward = forward
        self.frontier_ts: int | None = None
        self.frontier_ids: set[str] = set()
        self.idle = 0
        self.requests = 0
        self._asked: set[object] = set()
        self._asked_unhashable: list[object] = []

    def _seen_cursor(self, cursor: object) -> bool:
        try:
            return cursor in self._asked
        except TypeError:
            return any(cursor == c for c in self._asked_unhashable)

    def _remember(self, cursor: object) -> None:
        try:
            self._asked.add(cursor)
        except TypeError:
            self._asked_unhashable.append(cursor)

    def _moved(self, rows: pl.DataFrame) -> bool:
        """Whether ``rows`` (clipped to the window) extend the frontier; updates it."""
        if rows.height == 0:
            return False
        ts = rows.get_column("ts")
        edge = int(ts.max() if self.forward else ts.min())  # type: ignore[arg-type]
        at_edge = set(rows.filter(pl.col("ts") == edge).get_column("trade_id").to_list())
        beyond = self.frontier_ts is None or (
            edge > self.frontier_ts if self.forward else edge < self.frontier_ts
        )
        if beyond:
            self.frontier_ts, self.frontier_ids = edge, at_edge
            return True
        if edge == self.frontier_ts and not at_edge <= self.frontier_ids:
            self.frontier_ids |= at_edge
            return True
        return False

    def observe(self, asked: object | None, page: TradePage, start_ts: int, end_ts: int) -> None:
        """Check one answered page of the window ``[start_ts, end_ts)`` asked at ``asked``."""
        self.requests += max(1, page.requests)
        if self._moved(clip_rows(page.rows, start_ts, end_ts)):
            self.idle = 0
            self._asked.clear()
            self._asked_unhashable.clear()
            return
        self._remember(asked)
        nxt = page.next_cursor
        if nxt is not None and self._seen_cursor(nxt):
            raise self._stalled(
                f"the cursor does not move (asked {asked!r}, told to ask {nxt!r} again)",
                asked,
                page,
                start_ts,
                end_ts,
            )
        if page.rows.height == 0:
            return  # a quiet stretch: the cursor moved on, the window did not
        self.idle += 1
        if self.idle >= MAX_IDLE_PAGES:
            raise self._stalled(
                f"{self.idle} pages in a row brought no trade of the window not already "
                "seen (the same page again, or pages dated outside the window)",
                asked,
                page,
                start_ts,
                end_ts,
            )

    def _stalled(
        self, what: str, asked: object, page: TradePage, start_ts: int, end_ts: int
    ) -> PagingStalled:
        rows = page.rows
        if rows.height:
            ts = rows.get_column("ts")
            ids = rows.get_column("trade_id")
            seen = (
                f"the last page held {rows.height} trades dated "
                f"{iso_datetime(int(ts.min()))} .. {iso_datetime(int(ts.max()))}, "  # type: ignore[arg-type]
                f"ids {ids[0]} .. {ids[-1]}"
            )
        else:
            seen = "the last page was empty"
        frontier = iso_datetime(self.frontier_ts) if self.frontier_ts is not None else "nothing yet"
        return PagingStalled(
            f"{self.exchange} trades {self.symbol}: paging "
            f"{iso_datetime(start_ts)} -> {iso_datetime(end_ts)} stopped after "
            f"{self.requests} requests: {what}; cursor {asked!r}; {seen}; got as far as "
            f"{frontier}. The exchange is answering pages that do not advance: retry "
            "later, and if it persists report this line (a changed API?)"
        )


class _IdContinuity:
    """Proves that consecutive integer trade ids have no gap across pages and seams."""

    def __init__(self, exchange: str, symbol: Symbol) -> None:
        self.last_id: int | None = None
        self.exchange = exchange
        self.symbol = symbol

    def check(self, rows: pl.DataFrame, replayed: tuple[str, ...] = ()) -> None:
        if replayed:
            self._check_with_replays(rows, replayed)
            return
        if rows.height == 0:
            return
        ids = rows.get_column("trade_id").cast(pl.Int64, strict=False)
        first, last = ids[0], ids[-1]
        if ids.null_count() or first is None or last is None:
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: non-integer trade ids from a source "
                "that declares sequential ids"
            )
        # sorted + distinct + (last - first == n - 1)  <=>  consecutive
        contiguous = (
            last - first == rows.height - 1 and ids.is_sorted() and ids.n_unique() == rows.height
        )
        if self.last_id is not None and first <= self.last_id:
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: trade ids went back (expected "
                f"{self.last_id + 1}, got {first}..{last}): the exchange repeated or "
                "reordered a page; nothing from it was stored, re-run the backfill"
            )
        if not contiguous or (self.last_id is not None and first != self.last_id + 1):
            expected = "?" if self.last_id is None else str(self.last_id + 1)
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: gap in trade ids (expected {expected}, "
                f"got {first}..{last} in {rows.height} rows); refusing to store an "
                "incomplete range, re-run the backfill"
            )
        self.last_id = int(last)

    def _check_with_replays(self, rows: pl.DataFrame, replayed: tuple[str, ...]) -> None:
        """As ``check``, the ids of rows dropped as replays counting as seen (they were
        sent, in sequence; only their trades had been delivered already)."""
        skipped = {int(i) for i in replayed}
        ids = rows.get_column("trade_id").cast(pl.Int64, strict=False)
        if ids.null_count():
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: non-integer trade ids from a source "
                "that declares sequential ids"
            )
        got = [int(i) for i in ids.to_list()]
        if self.last_id is not None:
            expected = self.last_id + 1
        elif got:
            expected = got[0]
        else:
            expected = min(skipped)
        while expected in skipped:
            expected += 1
        if got and got[0] < expected and self.last_id is not None:
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: trade ids went back (expected "
                f"{expected}, got {got[0]}..{got[-1]}): the exchange repeated or "
                "reordered a page; nothing from it was stored, re-run the backfill"
            )
        for trade_id in got:
            if trade_id != expected:
                raise UnexpectedPayload(
                    f"{self.exchange} {self.symbol}: gap in trade ids (expected {expected}, "
                    f"got {got[0]}..{got[-1]} in {rows.height} rows); refusing to store an "
                    "incomplete range, re-run the backfill"
                )
            expected += 1
            while expected in skipped:
                expected += 1
        self.last_id = expected - 1


class _Replays:
    """Drops, in the order pages are yielded, the rows of a page that only re-send
    underlying trades an earlier page delivered (pages that carry
    ``first_trade_ids``/``last_trade_id``, e.g. Binance aggregates ``f..l``). The source
    drops such rows inside one page; a replay whose original is on the page before
    can only be seen here, as pages are fetched concurrently."""

    def __init__(self, source: PageSource, symbol: Symbol) -> None:
        self.origin = f"{source.id} {symbol}"
        #: the highest underlying trade id and row id delivered by the pages so far
        self.high: int | None = None
        self.high_id: int | None = None

    def apply(self, page: TradePage) -> tuple[pl.DataFrame, tuple[str, ...]]:
        """The page's rows without replays, and every replayed id (the source's too).

        A replay has a new row id (above every id delivered before) with old trades: a
        row, or a page, sent twice keeps its ids and is left to the id checks."""
        rows, replayed, first = page.rows, page.replayed, page.first_trade_ids
        ids = rows.get_column("trade_id").cast(pl.Int64, strict=False)
        if (
            first is not None
            and self.high is not None
            and self.high_id is not None
            and rows.height == first.len()
        ):
            mask = ((first <= self.high) & (ids > self.high_id)).fill_null(False)
            if mask.any():
                dropped = tuple(rows.get_column("trade_id").filter(mask).to_list())
                log.warning(
                    "%s: dropped %d replayed trade(s) %s at a page boundary: their "
                    "trades (up to id %d) were already delivered by the page before",
                    self.origin,
                    len(dropped),
                    ", ".join(dropped[:10]),
                    self.high,
                )
                rows = rows.filter(~mask)
                replayed = replayed + dropped
        if page.last_trade_id is not None:
            high = page.last_trade_id
            self.high = high if self.high is None else max(self.high, high)
        tops = [int(i) for i in replayed]
        if ids.drop_nulls().len():
            tops.append(int(ids.max()))  # type: ignore[arg-type]
        if tops:
            top = max(tops)
            self.high_id = top if self.high_id is None else max(self.high_id, top)
        return rows, replayed


class _IdOrder:
    """Carries ``check_trade_id_order`` across the chunks of a walk, in the order they
    are yielded, so a seam between pages whose ids rise while their times fall is
    refused like a page that does (sources with ``monotonic_trade_ids`` only)."""

    def __init__(self, source: PageSource, symbol: Symbol) -> None:
        self.on = source.monotonic_trade_ids
        self.origin = f"{source.id} {symbol}"
        self.edges: IdEdges | None = None

    def check(self, rows: pl.DataFrame) -> None:
        if self.on:
            self.edges = check_trade_id_order(rows, origin=self.origin, edges=self.edges)


async def paginate_trades(
    source: PageSource,
    symbol: Symbol,
    start_ts: int,
    end_ts: int,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    min_split_pages: int = 64,
    max_buffer_rows: int = 500_000,
    stats: PageStats | None = None,
) -> AsyncIterator[Chunk]:
    """Yield the trades of ``[start_ts, end_ts)`` in order, as chunks of about a page.

    Sources with consecutive trade ids that can address a page by id (a
    ``cursor_at_trade_id(trade_id)`` method, e.g. Binance ``fromId``) are paged in id
    blocks of exactly one page, fetched concurrently like candle windows: no seam costs
    a request. Other sources are paged by time segments (see the module docstring).
    ``max_buffer_rows`` bounds the rows held ahead of the committed position (segments
    far ahead of the first one pause), so memory does not grow with the window.
    """
    stats = stats if stats is not None else PageStats()
    feature = source.capability.feature(DataType.TRADES)
    forward = feature is None or feature.direction is PageDirection.FORWARD
    cursor_at = getattr(source, "cursor_at_trade_id", None)
    if forward and source.sequential_trade_ids and callable(cursor_at):
        limit = _page_limit(source, DataType.TRADES)
        by_id = _paginate_by_id(
            source, symbol, start_ts, end_ts, cursor_at, limit, concurrency, stats
        )
        try:
            async for chunk in by_id:
                yield chunk
        finally:
            await by_id.aclose()
        return
    segmented = _paginate_segments(
        source,
        symbol,
        start_ts,
        end_ts,
        forward,
        concurrency,
        min_split_pages,
        max_buffer_rows,
        stats,
    )
    try:
        async for chunk in segmented:
            yield chunk
    finally:
        await segmented.aclose()


async def _paginate_by_id(
    source: PageSource,
    symbol: Symbol,
    start_ts: int,
    end_ts: int,
    cursor_at: Callable[[int], object],
    limit: int,
    concurrency: int,
    stats: PageStats,
) -> AsyncGenerator[Chunk, None]:
    """First page by time (following the source's cursor over quiet stretches), then
    blocks of ``limit`` ids from the next id on, up to ``concurrency`` in flight (fewer
    when the estimated rest of the window is shorter), yielded in order, until a page
    reaches ``end_ts`` or comes back short (the newest trade)."""
    continuity = _IdContinuity(source.id, symbol)
    order = _IdOrder(source, symbol)
    replays = _Replays(source, symbol)
    advance = _Advance(source.id, symbol, forward=True)
    stats.segments = stats.windows_total = 1
    cursor: object | None = None
    while True:  # the first rows of the window, by time
        page = await source.fetch_trades_page(symbol, start_ts, end_ts, cursor)
        stats.requests += page.requests
        stats.pages += 1
        advance.observe(cursor, page, start_ts, end_ts)
        if page.rows.height or page.next_cursor is None:
            break
        cursor = page.next_cursor
    raw, replayed = replays.apply(page)
    stats.replayed += len(replayed)
    rows = clip_rows(raw, start_ts, end_ts)
    last_ts = int(raw.get_column("ts")[-1]) if raw.height else end_ts
    done = page.next_cursor is None or last_ts >= end_ts
    continuity.check(rows, replayed)
    order.check(rows)
    stats.covered_until_ts = end_ts if done else max(start_ts, last_ts)
    stats.done_ns = stats.covered_until_ts - start_ts
    if done:
        stats.windows_done = 1
    yield Chunk(rows, start_ts, stats.covered_until_ts)
    if done:
        return
    next_id = max(int(i) for i in (*raw.get_column("trade_id").to_list()[-1:], *replayed)) + 1
    first_ts = int(raw.get_column("ts")[0])
    seen = raw.height
    pending: collections.deque[tuple[object, asyncio.Task[TradePage]]] = collections.deque()

    slots = max(1, concurrency)

    def wanted() -> int:
        """Pages worth requesting after the last one yielded: the estimated rest of the
        window plus one (so a short estimate costs a round trip, not a lost page)."""
        span_ns = last_ts - first_ts
        if span_ns <= 0:
            return _AHEAD * slots
        rest_pages = (end_ts - last_ts) * seen / span_ns / limit
        return max(1, min(_AHEAD * slots, math.ceil(rest_pages * 1.2) + 1))

    def launch() -> None:
        nonlocal next_id
        running = sum(1 for _, t in pending if not t.done())
        want = wanted()
        while running < slots and len(pending) < want:
            asked = cursor_at(next_id)
            task = asyncio.ensure_future(source.fetch_trades_page(symbol, start_ts, end_ts, asked))
            pending.append((asked, task))
            next_id += limit
            running += 1

    try:
        launch()
        while pending:
            if not pending[0][1].done():
                running = [t for _, t in pending if not t.done()]
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                launch()
                continue
            asked, task = pending.popleft()
            page = task.result()
            stats.requests += page.requests
            stats.pages += 1
            advance.observe(asked, page, start_ts, end_ts)
            raw, replayed = replays.apply(page)
            stats.replayed += len(replayed)
            rows = clip_rows(raw, start_ts, end_ts)
            sent = page.rows.height + len(page.replayed)  # a dropped replay was sent
            if raw.height:
                last_ts = max(last_ts, int(raw.get_column("ts")[-1]))
            seen += sent
            done = sent < limit or last_ts >= end_ts or page.next_cursor is None
            continuity.check(rows, replayed)
            order.check(rows)
            stats.covered_until_ts = end_ts if done else max(start_ts, last_ts)
            stats.done_ns = stats.covered_until_ts - start_ts
            if done:
                stats.windows_done = 1
            yield Chunk(rows, start_ts, stats.covered_until_ts)
            if done:
                return
            launch()
    finally:
        # pages fetched ahead of the end: answered, so they were requests
        stats.requests += sum(
            t.result().requests
            for _, t in pending
            if t.done() and not t.cancelled() and t.exception() is None
        )
        await _cancel_all(t for _, t in pending)


async def _paginate_segments(
    source: PageSource,
    symbol: Symbol,
    start_ts: int,
    end_ts: int,
    forward: bool,
    concurrency: int,
    min_split_pages: int,
    max_buffer_rows: int,
    stats: PageStats,
) -> AsyncGenerator[Chunk, None]:
    """Time segments drained by cursor, split adaptively (see the module docstring)."""
    split_pages = max(1, min_split_pages)
    continuity = _IdContinuity(source.id, symbol) if source.sequential_trade_ids else None
    order = _IdOrder(source, symbol)
    segments: list[_Segment] = [_Segment(start_ts, end_ts)]
    finished_ns = 0  # time of the segments already yielded whole
    tasks: dict[asyncio.Task[TradePage], tuple[_Segment, object]] = {}
    stats.segments = 1
    stats.windows_total = 1

    def launch(seg: _Segment) -> None:
        seg.busy = True
        task = asyncio.ensure_future(
            source.fetch_trades_page(symbol, seg.start, seg.end, seg.cursor)
        )
        tasks[task] = (seg, seg.cursor)

    def absorb(seg: _Segment, page: TradePage, asked: object) -> None:
        stats.requests += page.requests
        stats.pages += 1
        seg.pages += 1
        if seg.advance is None:
            seg.advance = _Advance(source.id, symbol, forward)
        seg.advance.observe(asked, page, seg.start, seg.end)
        rows = page.rows
        reached_end = False
        if rows.height:
            max_ts = int(rows.get_column("ts").max())  # type: ignore[arg-type]
            reached_end = forward and max_ts >= seg.end
            if forward:
                seg.pos_ts = max(seg.pos_ts, min(max_ts, seg.end))
            else:
                min_ts = max(seg.start, int(rows.get_column("ts").min()))  # type: ignore[arg-type]
                if min_ts < seg.end:
                    seg.low_ts = min_ts if seg.low_ts is None else min(seg.low_ts, min_ts)
        rows = _dedup_page(seg, clip_rows(rows, seg.start, seg.end))
        seg.cursor = page.next_cursor
        seg.done = page.next_cursor is None or reached_end
        covered = seg.end if seg.done else seg.pos_ts
        if rows.height or seg.done:
            seg.buffer.append(Chunk(rows, seg.start, covered))
            seg.buffered_rows += rows.height
        stats.done_ns = max(stats.done_ns, finished_ns + sum(s.done_ns() for s in segments))

    def may_fetch(index: int) -> bool:
        ahead = sum(s.buffered_rows for s in segments[1 : index + 1])
        return index == 0 or ahead < max_buffer_rows

    def split_one() -> _Segment | None:
        """Carve about ``split_pages`` pages off the front of the farthest segment that
        still holds at least twice that (estimated from its own pace); the rest becomes a
        new segment that starts fetching now. Carving from the far end keeps the active
        segments adjacent, so the ones ahead of the committed position stay few."""
        if not forward:
            return None
        allowed = [i for i in range(len(segments)) if may_fetch(i)]
        for index in reversed(allowed):
            seg = segments[index]
            if seg.remaining_pages() < 2 * split_pages:
                continue
            ns_per_page = (seg.pos_ts - seg.start) / seg.pages
            cut = seg.pos_ts + int(split_pages * ns_per_page)
            cut -= cut % NS_PER_MS
            if seg.pos_ts < cut < seg.end:
                new = _Segment(cut, seg.end)
                seg.end = cut
                segments.insert(index + 1, new)
                stats.segments += 1
                stats.windows_total += 1
                return new
        return None

    try:
        while segments:
            head = segments[0]
            while head.buffer:
                chunk = head.buffer.popleft()
                head.buffered_rows -= chunk.rows.height
                if continuity is not None:
                    continuity.check(chunk.rows)
                order.check(chunk.rows)
                stats.covered_until_ts = chunk.covered_until_ts
                yield chunk
            if head.done and not head.busy:
                segments.pop(0)
                finished_ns += head.end - head.start
                stats.windows_done += 1
                continue
            for index, seg in enumerate(segments):
                if len(tasks) >= concurrency:
                    break
                if not seg.busy and not seg.done and may_fetch(index):
                    launch(seg)
            while len(tasks) < concurrency and (new := split_one()) is not None:
                launch(new)
            if not tasks:  # the head is never done-and-idle here; guard against a bug
                raise RuntimeError("trade paginator stalled")
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                seg, asked = tasks.pop(task)
                seg.busy = False
                absorb(seg, task.result(), asked)
    finally:
        await _cancel_all(tasks)
