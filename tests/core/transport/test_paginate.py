"""Paginators: the candle window splitter and the trade seams, as properties.

``MemorySource`` pages an in-memory trade list with Binance's cursor semantics (time
slices that may come back empty, then by id), with a tiny page limit so that every
seam, same-millisecond burst and quiet stretch is crossed many times.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dccd_core.domain import (
    NS_PER_MS,
    Capability,
    DataType,
    Feature,
    PageDirection,
    PagingStalled,
    Span,
    Symbol,
    Transport,
    UnexpectedPayload,
)
from dccd_core.sources.base import Endpoints, Source
from dccd_core.transport.pages import TradePage
from dccd_core.transport.paginate import (
    MAX_IDLE_PAGES,
    Chunk,
    PageStats,
    candle_windows,
    paginate_candles,
    paginate_trades,
)
from tests.core.storage.helpers import trades
from tests.fakes.market import TRADES_SCHEMA

SYMBOL = Symbol.parse("BTC/USDT")


class MemorySource(Source):
    """Trades ``i`` at ``ts_ms[i]`` (sorted); ids ``i`` are consecutive."""

    id: ClassVar[str] = "memory"
    default_endpoints: ClassVar[Endpoints] = Endpoints("http://memory")
    sequential_trade_ids: ClassVar[bool] = True
    # Synthetic data counted from the epoch (ts of a few ms): exempt from the
    # plausibility check that real exchanges' pages pass through.
    check_plausibility: ClassVar[bool] = False

    def __init__(self, ts_ms: list[int], limit: int, slice_ms: int, skip_id: int | None = None):
        super().__init__(None)
        self.capability = Capability(
            "memory",
            (
                Feature(DataType.TRADES, Transport.REST, page_limit=limit),
                Feature(DataType.OHLC, Transport.REST, page_limit=limit),
            ),
        )
        self.ts = np.asarray(ts_ms, dtype=np.int64)
        self.limit = limit
        self.slice_ms = slice_ms
        self.skip_id = skip_id
        self.calls = 0

    def native_symbol(self, symbol: Symbol) -> str:
        return str(symbol)

    def _rows(self, lo: int, hi: int) -> pl.DataFrame:
        ids = np.arange(lo, hi)
        if self.skip_id is not None:
            ids = ids[ids != self.skip_id]
        return pl.DataFrame(
            {
                "ts": self.ts[ids] * NS_PER_MS,
                "trade_id": [str(i) for i in ids],
                "price": np.full(len(ids), 1.0),
                "amount": np.full(len(ids), 2.0),
                "side": ["buy"] * len(ids),
            },
            schema=TRADES_SCHEMA,
        )

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        self.calls += 1
        await asyncio.sleep(0)
        end_ms = -(-end_ts // NS_PER_MS)
        if cursor is None or cursor[0] == "time":
            t = -(-start_ts // NS_PER_MS) if cursor is None else cursor[1]
            t_end = min(t + self.slice_ms, end_ms)
            lo = int(np.searchsorted(self.ts, t, "left"))
            hi = min(int(np.searchsorted(self.ts, t_end, "left")), lo + self.limit)
            rows = self._rows(lo, hi)
            if hi - lo == self.limit:
                return TradePage(rows, ("id", hi))
            if t_end >= end_ms:
                return TradePage(rows, None)
            return TradePage(rows, ("id", hi) if hi > lo else ("time", t_end))
        lo = cursor[1]
        hi = min(lo + self.limit, len(self.ts))
        rows = self._rows(lo, hi)
        if hi - lo < self.limit or self.ts[hi - 1] * NS_PER_MS >= end_ts:
            return TradePage(rows, None)
        return TradePage(rows, ("id", hi))

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        self.calls += 1
        bars = np.unique(self.ts * NS_PER_MS // span.ns * span.ns)
        bars = bars[(bars >= start_ts) & (bars < end_ts)]
        assert len(bars) <= self.limit
        return pl.DataFrame({"ts": bars, "open": np.ones(len(bars))})


class IdMemorySource(MemorySource):
    """The same exchange, also addressable by trade id (the paginator's id-block path)."""

    def cursor_at_trade_id(self, trade_id: int) -> tuple[str, int]:
        return ("id", trade_id)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _run_trades(source: Any, *args: Any, **kwargs: Any) -> list[Chunk]:
    """Every chunk ``paginate_trades(source, SYMBOL, *args, **kwargs)`` yields."""
    return _run(_collect(paginate_trades(source, SYMBOL, *args, **kwargs)))  # type: ignore[no-any-return]


async def _collect(gen: Any) -> list[Chunk]:
    return [chunk async for chunk in gen]


# -- candle windows ----------------------------------------------------------------


@given(
    start=st.integers(0, 10**18),
    length=st.integers(0, 10**16),
    span=st.sampled_from(Span.all()),
    limit=st.integers(1, 1500),
)
def test_candle_windows_tile_the_range(start: int, length: int, span: Span, limit: int) -> None:
    end = start + length
    windows = candle_windows(start, end, span, limit)
    first = span.floor(start) if span.floor(start) == start else span.floor(start) + span.ns
    if first >= end:
        assert windows == []
        return
    assert windows[0][0] == first
    assert windows[-1][1] == end
    for (_, b), (c, _) in itertools.pairwise(windows):
        assert b == c  # contiguous, no overlap
    for a, b in windows:
        assert span.floor(a) == a  # every window starts on a bar open
        assert 0 < b - a <= limit * span.ns  # never more than a page of bars


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hours=st.lists(st.integers(0, 1), min_size=1, max_size=60),
    limit=st.integers(1, 25),
    concurrency=st.integers(1, 6),
)
def test_candle_pages_in_order_and_complete(hours: list[int], limit: int, concurrency: int) -> None:
    span = Span.parse("1h")
    ts_ms = [i * 3_600_000 for i, present in enumerate(hours) if present]
    source = MemorySource(ts_ms, limit, 3_600_000)
    end = len(hours) * span.ns
    stats = PageStats()
    chunks = _run(
        _collect(
            paginate_candles(source, SYMBOL, span, 0, end, concurrency=concurrency, stats=stats)
        )
    )
    got = [t for c in chunks for t in c.rows.get_column("ts").to_list()]
    assert got == [t * NS_PER_MS for t in ts_ms]
    assert [c.covered_until_ts for c in chunks] == sorted(c.covered_until_ts for c in chunks)
    assert chunks[-1].covered_until_ts == end
    assert stats.requests == -(-len(hours) // limit)  # one request per window, holes or not


# -- trades ------------------------------------------------------------------------

gaps = st.lists(
    st.one_of(st.just(0), st.integers(0, 5), st.integers(0, 400)),  # bursts, dense, quiet
    min_size=0,
    max_size=800,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gap_list=gaps,
    limit=st.integers(2, 40),
    slice_ms=st.integers(50, 500),
    concurrency=st.integers(1, 6),
    split=st.integers(1, 3),
    cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    by_id=st.booleans(),
)
def test_trades_seams_lose_and_duplicate_nothing(
    gap_list: list[int],
    limit: int,
    slice_ms: int,
    concurrency: int,
    split: int,
    cut: tuple[float, float],
    by_id: bool,
) -> None:
    ts_ms = list(np.cumsum([1000, *gap_list]))
    span_ms = ts_ms[-1] + 50
    a, b = sorted(cut)
    start, end = int(a * span_ms) * NS_PER_MS, (int(b * span_ms) + 1) * NS_PER_MS
    source = (IdMemorySource if by_id else MemorySource)(ts_ms, limit, slice_ms)
    stats = PageStats()
    chunks = _run_trades(
        source, start, end, concurrency=concurrency, min_split_pages=split,
        max_buffer_rows=3 * limit, stats=stats
    )
    expected = [str(i) for i, t in enumerate(ts_ms) if start <= t * NS_PER_MS < end]
    got = [i for c in chunks for i in c.rows.get_column("trade_id").to_list()]
    assert got == expected  # in order, nothing lost, nothing twice
    covered = [c.covered_until_ts for c in chunks]
    assert covered == sorted(covered) and covered[-1] == end
    for chunk in chunks:  # a chunk never claims more than it holds
        assert all(t <= chunk.covered_until_ts for t in chunk.rows.get_column("ts").to_list())
    # requests cancelled in flight at the end may or may not have reached the source
    assert stats.requests <= source.calls <= stats.requests + concurrency
    if by_id:  # id blocks: never more than the pages needed plus the ones in flight
        needed = -(-len(expected) // limit) + 1
        assert source.calls <= needed + concurrency + (span_ms // slice_ms) + 1


def test_dense_window_splits_and_stays_near_the_minimum() -> None:
    ts_ms = [1000 + i // 3 for i in range(60_000)]  # 3 trades per ms
    source = MemorySource(ts_ms, 100, 3_600_000)
    stats = PageStats()
    chunks = _run_trades(
        source, 0, 30_000 * NS_PER_MS, concurrency=6, min_split_pages=16, stats=stats
    )
    assert sum(c.rows.height for c in chunks) == 60_000
    assert stats.segments > 4  # it did fetch concurrently
    assert stats.requests <= 1.05 * 600


def test_gap_in_sequential_ids_raises() -> None:
    source = MemorySource(list(range(1000, 1300)), 10, 3_600_000, skip_id=155)
    with pytest.raises(UnexpectedPayload, match="gap in trade ids"):
        _run(_collect(paginate_trades(source, SYMBOL, 0, 10**12, concurrency=3)))


def test_id_blocks_cost_no_seam_requests() -> None:
    ts_ms = [1000 + i // 3 for i in range(60_000)]
    source = IdMemorySource(ts_ms, 100, 3_600_000)
    stats = PageStats()
    chunks = _run(
        _collect(paginate_trades(source, SYMBOL, 0, 30_000 * NS_PER_MS, concurrency=6, stats=stats))
    )
    assert [i for c in chunks for i in c.rows.get_column("trade_id").to_list()] == [
        str(i) for i in range(60_000)
    ]
    assert source.calls <= 600 + 2


def test_id_path_gap_raises() -> None:
    source = IdMemorySource(list(range(1000, 1300)), 10, 3_600_000, skip_id=155)
    with pytest.raises(UnexpectedPayload, match="gap in trade ids"):
        _run(_collect(paginate_trades(source, SYMBOL, 0, 10**12, concurrency=3)))


# -- every paging mode ends: pages that never move are refused, boundedly ------------

T0 = 1_000 * NS_PER_MS  # synthetic windows (check_plausibility is off for these doubles)


def _trades(ids: list[int], ts_ms: list[int]) -> pl.DataFrame:
    return trades([str(i) for i in ids], [t * NS_PER_MS for t in ts_ms])


class BadPages(Source):
    """A trade source whose every answer is ``answer(calls, cursor)`` -> TradePage."""

    id: ClassVar[str] = "badpages"
    default_endpoints: ClassVar[Endpoints] = Endpoints("http://bad")
    check_plausibility: ClassVar[bool] = False

    def __init__(self, answer: Any, *, backward: bool = False, by_id: bool = False) -> None:
        super().__init__(None)
        direction = PageDirection.BACKWARD if backward else PageDirection.FORWARD
        self.capability = Capability(
            "badpages",
            (Feature(DataType.TRADES, Transport.REST, page_limit=3, direction=direction),),
        )
        self.answer = answer
        self.calls = 0
        if by_id:
            self.cursor_at_trade_id = lambda trade_id: ("id", trade_id)  # type: ignore[attr-defined]

    sequential_trade_ids: ClassVar[bool] = False

    def native_symbol(self, symbol: Symbol) -> str:
        return str(symbol)

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls > 1_000:  # a regression must fail here, not hang the suite
            raise AssertionError("the paginator never stopped")
        page: TradePage = self.answer(self.calls, cursor)
        return page


class SequentialBadPages(BadPages):
    sequential_trade_ids: ClassVar[bool] = True


def _stall(source: BadPages, start: int = T0, end: int = T0 + 10_000 * NS_PER_MS) -> str:
    with pytest.raises(PagingStalled) as caught:
        _run(_collect(paginate_trades(source, SYMBOL, start, end, concurrency=3)))
    return str(caught.value)


@pytest.mark.timeout(20)
def test_a_page_repeated_forever_with_a_moving_cursor_stops() -> None:
    page = _trades([1, 2, 3], [1_001, 1_002, 1_003])
    source = BadPages(lambda n, cursor: TradePage(page, n))
    message = _stall(source)
    # each concurrent segment (at most 3 here) stalls on its own
    assert source.calls <= 3 * (MAX_IDLE_PAGES + 1)
    assert "badpages trades BTC/USDT" in message
    assert f"{MAX_IDLE_PAGES} pages in a row" in message
    assert "cursor" in message and "ids 1 .. 3" in message


@pytest.mark.timeout(20)
def test_a_cursor_that_never_moves_stops_at_once() -> None:
    page = _trades([1, 2, 3], [1_001, 1_002, 1_003])
    source = BadPages(lambda n, cursor: TradePage(page, ("at", 7)))
    message = _stall(source)
    assert source.calls <= 3  # the first page is new; the second repeats it at the same cursor
    assert "the cursor does not move" in message and "('at', 7)" in message


@pytest.mark.timeout(20)
def test_an_empty_page_whose_cursor_comes_back_stops() -> None:
    empty = _trades([], [])
    source = BadPages(lambda n, cursor: TradePage(empty, ("time", n % 2)))
    message = _stall(source)
    assert source.calls <= 3
    assert "the cursor does not move" in message and "the last page was empty" in message


@pytest.mark.timeout(20)
def test_pages_dated_before_the_window_stop() -> None:
    # the exchange ignores ``since``: ever older pages, each with a new cursor
    def older(n: int, cursor: Any) -> TradePage:
        base = 900 - 3 * n
        return TradePage(_trades([base, base + 1, base + 2], [base, base + 1, base + 2]), n)

    source = BadPages(older)
    message = _stall(source)
    assert source.calls <= 3 * MAX_IDLE_PAGES
    assert "dated outside the window" in message and "got as far as nothing yet" in message


@pytest.mark.timeout(20)
def test_backward_pages_that_repeat_stop() -> None:
    # newest-first paging (OKX, Coinbase): the same page, the cursor moving "back"
    page = _trades([7, 8, 9], [5_000, 5_001, 5_002])
    source = BadPages(lambda n, cursor: TradePage(page, 7 - n), backward=True)
    _stall(source)
    assert source.calls <= MAX_IDLE_PAGES + 1


@pytest.mark.timeout(20)
def test_id_blocks_dated_before_the_window_stop() -> None:
    # by-id paging (Binance fromId): consecutive ids, but every block dated before the
    # window, so the walk would read all of history before reaching it
    def by_id(n: int, cursor: Any) -> TradePage:
        first = 0 if cursor is None else cursor[1]
        ids = [first, first + 1, first + 2]
        return TradePage(_trades(ids, [10 + i for i in ids]), ("id", first + 3))

    source = SequentialBadPages(by_id, by_id=True)
    message = _stall(source)
    assert source.calls <= MAX_IDLE_PAGES + 3 * 4  # the stall plus pages already in flight
    assert "dated outside the window" in message


@pytest.mark.timeout(20)
def test_a_long_quiet_stretch_is_not_a_stall() -> None:
    # empty pages, each with a new cursor (time slices), then the trades: all kept
    def quiet(n: int, cursor: Any) -> TradePage:
        if n < 50:
            return TradePage(_trades([], []), ("time", n))
        return TradePage(_trades([1, 2], [1_500, 1_600]), None)

    source = BadPages(quiet)
    chunks = _run(
        _collect(paginate_trades(source, SYMBOL, T0, T0 + 10_000 * NS_PER_MS, concurrency=1))
    )
    assert pl.concat([c.rows for c in chunks])["trade_id"].to_list() == ["1", "2"]


@pytest.mark.timeout(20)
def test_an_id_page_served_twice_says_so() -> None:
    # by id, the exchange answers the previous block again: named, not called a gap
    def again(n: int, cursor: Any) -> TradePage:
        first = 0 if cursor is None else max(0, cursor[1] - 3)
        ids = [first, first + 1, first + 2]
        return TradePage(_trades(ids, [1_000 + i for i in ids]), ("page", n))

    source = SequentialBadPages(again, by_id=True)
    with pytest.raises(UnexpectedPayload, match=r"trade ids went back .* repeated or reordered"):
        _run(_collect(paginate_trades(source, SYMBOL, T0, T0 + 10_000 * NS_PER_MS)))
    assert source.calls <= 1 + 6 * 4
