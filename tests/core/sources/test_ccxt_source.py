"""The generic ccxt source against a fake Binance on loopback (no internet).

The fake (``tests.fakes.binance_quirks``) speaks Binance's real REST semantics,
including the ones that make ccxt's own pagination lose data: one-hour aggTrades
windows, the *last* trades of a crowded window, 1,250 trades in one millisecond,
two quiet hours. Every test compares what the source returns with the fake's truth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_MS, DataType, Span, Symbol
from dccd_core.domain.errors import (
    ConfigError,
    ExchangeError,
    NoCapability,
    RateLimited,
    RetryExhausted,
    SourceError,
    UnknownExchange,
    UnknownSymbol,
)
from dccd_core.sources.base import Endpoints
from dccd_core.sources.ccxt_exchange import (
    GENERIC_TRADES,
    derive_capability,
    rewrite_api_urls,
    span_timeframes,
)
from dccd_core.sources.ccxt_source import CcxtSource
from dccd_core.sources.ccxt_trades import IdCursor, TimeCursor
from dccd_core.transport.retry import RetryPolicy
from tests.fakes.binance_quirks import HOUR_MS, BinanceQuirksFake, make_tape
from tests.fakes.market import ohlc_frame
from tests.fakes.server import FaultInjector, serve

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, ms
BTC = Symbol.parse("BTC/USDT")
FAST_RETRY = RetryPolicy(attempts=6, base_s=0.001, max_s=0.01, rate_limit_attempts=3)


def ns(ms: int) -> int:
    return ms * NS_PER_MS


def by_id(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(pl.col("trade_id").cast(pl.Int64))


async def drain(source: CcxtSource, start_ms: int, end_ms: int) -> tuple[pl.DataFrame, list[Any]]:
    """Every page of a window the way a paginator asks: cursor to cursor, rows clipped."""
    cursor: Any = None
    pages: list[pl.DataFrame] = []
    cursors: list[Any] = []
    for _ in range(200):
        page = await source.fetch_trades_page(BTC, ns(start_ms), ns(end_ms), cursor)
        pages.append(page.rows)
        cursor = page.next_cursor
        cursors.append(cursor)
        if cursor is None:
            break
    else:
        raise AssertionError("the trade cursor never ended")
    rows = pl.concat(pages).filter((pl.col("ts") >= ns(start_ms)) & (pl.col("ts") < ns(end_ms)))
    return rows, cursors


@pytest.fixture
def fake() -> BinanceQuirksFake:
    return BinanceQuirksFake(make_tape(T0), T0, T0 + 6 * HOUR_MS)


@pytest.fixture
async def origin(fake: BinanceQuirksFake) -> AsyncIterator[str]:
    async with serve(fake.app()) as url:
        yield url


@pytest.fixture
async def source(origin: str) -> AsyncIterator[CcxtSource]:
    src = CcxtSource("binance", Endpoints(origin), retry=FAST_RETRY)
    yield src
    await src.aclose()


# -- construction, capability ----------------------------------------------------------


async def test_unknown_exchange_lists_close_and_known_ids() -> None:
    with pytest.raises(UnknownExchange, match=r"binanse.*did you mean binance.*kraken"):
        CcxtSource("binanse")


async def test_capability_is_derived_from_ccxt() -> None:
    src = CcxtSource("binance")
    try:
        cap = src.capability
        assert src.id == "binance" and cap.exchange == "binance"
        ohlc = cap.require(DataType.OHLC, span=Span.parse("1h"))
        assert ohlc.page_limit == 500  # the smallest fetchOHLCV limit over market types
        assert Span.parse("1m") in ohlc.spans and Span.parse("1w") in ohlc.spans
        assert cap.require(DataType.TRADES).page_limit == 1_000
        assert cap.feature(DataType.BOOK) is not None
        assert cap.weight_per_minute == 1_200  # rateLimit 50 ms
        assert src.sequential_trade_ids is True
        assert src.exchange.enableRateLimit is False
        with pytest.raises(NoCapability, match="has no 2w candles"):
            cap.require(DataType.OHLC, span=Span(label="2w", seconds=1_209_600))
    finally:
        await src.aclose()


def test_span_timeframes_keep_only_dccd_spans() -> None:
    mapping = span_timeframes({"1s": "1s", "1m": "1", "60m": "60", "1h": "60", "3d": "3D"})
    assert mapping == {Span.parse("1m"): "1m", Span.parse("1h"): "1h"}


def test_span_timeframes_never_take_a_month_for_a_minute() -> None:
    """An exchange listing ``1M`` (a month) and no minute candles offers no 1m span."""
    mapping = span_timeframes({"1M": "1M", "1h": "1H", "1w": "1W"})
    assert mapping == {Span.parse("1h"): "1h", Span.parse("1w"): "1w"}


def test_capability_without_candles_or_book() -> None:
    class Stub:
        has = {"fetchOHLCV": "emulated", "fetchTrades": True, "fetchOrderBook": False}
        timeframes = {"1m": "1"}
        features: dict[str, Any] = {}
        rateLimit = 1_000
        urls = {"doc": "https://example.com/api"}

    cap = derive_capability(Stub(), "stubex")
    assert [f.data_type for f in cap.features] == [DataType.TRADES]
    assert cap.feature(DataType.TRADES).page_limit == 500  # type: ignore[union-attr]
    assert cap.weight_per_minute == 60
    assert cap.docs_url == "https://example.com/api"


def test_rewrite_api_urls_keeps_paths_in_nested_dicts() -> None:
    api = {
        "public": "https://api.binance.com/api/v3",
        "fapi": {"public": "https://fapi.binance.com/fapi/v1?x=1"},
        "ws": ["wss://stream.binance.com:9443/ws"],
        "rest": "https://api.{hostname}/v5",
    }
    got = rewrite_api_urls(api, "http://127.0.0.1:8080/")
    assert got == {
        "public": "http://127.0.0.1:8080/api/v3",
        "fapi": {"public": "http://127.0.0.1:8080/fapi/v1?x=1"},
        "ws": ["http://127.0.0.1:8080/ws"],
        "rest": "http://127.0.0.1:8080/v5",
    }
    with pytest.raises(ConfigError, match="origin"):
        rewrite_api_urls(api, "127.0.0.1:8080")


# -- markets ---------------------------------------------------------------------------


async def test_fetch_symbols_and_unknown_symbol(source: CcxtSource) -> None:
    symbols = await source.fetch_symbols()
    assert symbols == {BTC, Symbol.parse("ETH/USDT"), Symbol.parse("ETH/BTC")}
    assert source.native_symbol(BTC) == "BTCUSDT"
    with pytest.raises(UnknownSymbol, match="does not list BTC/EUR"):
        await source.fetch_candles(Symbol.parse("BTC/EUR"), Span.parse("1m"), ns(T0), ns(T0 + 1))


# -- candles ---------------------------------------------------------------------------


def _ohlc_truth(fake: BinanceQuirksFake, interval: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    rows = fake.truth_candles(interval, start_ms, end_ms)
    return ohlc_frame(
        ts=[ns(r[0]) for r in rows],
        open=[float(r[1]) for r in rows],
        high=[float(r[2]) for r in rows],
        low=[float(r[3]) for r in rows],
        close=[float(r[4]) for r in rows],
        volume=[float(r[5]) for r in rows],
    )


async def test_candles_one_call_clipped_to_the_window(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    fake.candle_holes = {T0 + 5 * 60_000}
    # Unaligned start: the first bar is the one opening at 00:01.
    start_ms, end_ms = T0 + 30_000, T0 + 2 * HOUR_MS
    got = await source.fetch_candles(BTC, Span.parse("1m"), ns(start_ms), ns(end_ms))
    assert_frame_equal(got, _ohlc_truth(fake, "1m", T0 + 60_000, end_ms))
    calls = [q for path, q in fake.requests if path == "/api/v3/klines"]
    assert len(calls) == 1
    assert calls[0]["startTime"] == str(T0 + 60_000)
    assert calls[0]["endTime"] == str(end_ms - 1)
    assert calls[0]["limit"] == "119"
    assert calls[0]["interval"] == "1m"


async def test_candles_empty_window_makes_no_request(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    got = await source.fetch_candles(BTC, Span.parse("1h"), ns(T0 + 1), ns(T0 + 1_000))
    assert got.height == 0 and got.columns[0] == "ts"
    assert not [p for p, _ in fake.requests if p == "/api/v3/klines"]


# -- trades: the Binance paging facts --------------------------------------------------


@pytest.mark.parametrize("tail_when_full", [True, False], ids=["tail", "head"])
async def test_trades_six_hours_equal_the_truth(
    source: CcxtSource, fake: BinanceQuirksFake, tail_when_full: bool
) -> None:
    """Same-ms bursts, a 1,250-trade millisecond and two quiet hours: nothing lost."""
    fake.tail_when_full = tail_when_full
    rows, _ = await drain(source, T0, T0 + 6 * HOUR_MS)
    assert_frame_equal(rows, fake.tape.truth(T0, T0 + 6 * HOUR_MS))
    windows = [q for p, q in fake.requests if p == "/api/v3/aggTrades" and "startTime" in q]
    assert windows and all(int(q["endTime"]) - int(q["startTime"]) < HOUR_MS for q in windows)
    assert not [q for p, q in fake.requests if "fromId" in q and "startTime" in q]


async def test_trades_window_opening_in_quiet_hours_walks_hour_by_hour(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    start, end = T0 + 2 * HOUR_MS, T0 + 6 * HOUR_MS  # hours 2-3 hold no trade
    rows, cursors = await drain(source, start, end)
    assert_frame_equal(rows, fake.tape.truth(start, end))
    assert rows.height > 1_000
    quiet = [c for c in cursors if isinstance(c, TimeCursor)]
    assert [c.since_ms for c in quiet][:2] == [start + HOUR_MS, start + 2 * HOUR_MS]


async def test_trades_window_opening_on_a_crowded_millisecond(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    """1,250 trades share the window's first ms: found by probing back by id."""
    crowded = fake.tape.ts_ms[fake.tape.ts_ms.index(T0 + HOUR_MS + 1_234_567)]
    rows, cursors = await drain(source, crowded, T0 + 2 * HOUR_MS)
    truth = fake.tape.truth(crowded, T0 + 2 * HOUR_MS)
    assert (truth["ts"] == ns(crowded)).sum() == 1_250
    assert_frame_equal(rows, truth)
    assert any(isinstance(c, IdCursor) and c.floor_ms == crowded for c in cursors)


async def test_trades_window_ending_mid_hour(source: CcxtSource, fake: BinanceQuirksFake) -> None:
    start, end = T0 + 10 * 60_000, T0 + 50 * 60_000 + 7
    rows, _ = await drain(source, start, end)
    assert_frame_equal(rows, fake.tape.truth(start, end))


# -- trades: the generic time cursor ---------------------------------------------------


async def test_generic_cursor_keeps_same_ms_trades_across_page_seams(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    """A venue paged only by time: since = last ms (inclusive) minus the ids seen there."""
    source.quirks = GENERIC_TRADES
    fake.tail_when_full = False  # time pages from `since` (a generic venue's semantics)
    rows, cursors = await drain(source, T0, T0 + HOUR_MS)
    assert_frame_equal(by_id(rows), fake.tape.truth(T0, T0 + HOUR_MS))
    seams = [c for c in cursors if isinstance(c, TimeCursor) and c.seen_ids]
    assert seams, "the test data should put page seams inside a millisecond"
    split = [c for c in seams if len(c.seen_ids) < fake.tape.ts_ms.count(c.since_ms)]
    assert split, "at least one millisecond should be split across two pages"
    assert all(isinstance(c, TimeCursor) or c is None for c in cursors)


async def test_generic_cursor_refuses_a_page_stuck_in_one_ms(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    source.quirks = GENERIC_TRADES
    fake.tail_when_full = False
    with pytest.raises(SourceError, match="full page of 1000 trades all at ms"):
        await drain(source, T0 + HOUR_MS, T0 + 2 * HOUR_MS)


# -- book --------------------------------------------------------------------------------


async def test_book_snapshot(source: CcxtSource) -> None:
    book = await source.fetch_book(BTC, 5)
    assert book.columns == ["ts", "side", "level", "price", "amount"]
    assert book.height == 10
    bids = book.filter(pl.col("side") == "bid")
    assert bids["price"].to_list() == [40000.0, 39999.5, 39999.0, 39998.5, 39998.0]
    assert bids["level"].to_list() == [0, 1, 2, 3, 4]
    assert book["ts"].n_unique() == 1


# -- errors ------------------------------------------------------------------------------


async def test_transient_faults_are_retried(fake: BinanceQuirksFake) -> None:
    faults = FaultInjector(rate=0.3, seed=3, kinds=("500", "503", "reset", "truncate"))
    app = fake.app()
    app.middlewares.append(faults.middleware)
    async with serve(app) as url:
        src = CcxtSource("binance", Endpoints(url), retry=FAST_RETRY)
        try:
            rows, _ = await drain(src, T0 + 4 * HOUR_MS, T0 + 6 * HOUR_MS)
        finally:
            await src.aclose()
    assert_frame_equal(rows, fake.tape.truth(T0 + 4 * HOUR_MS, T0 + 6 * HOUR_MS))
    assert sum(faults.counts.values()) >= 2


async def test_persistent_faults_raise_retry_exhausted(fake: BinanceQuirksFake) -> None:
    faults = FaultInjector(rate=1.0, kinds=("502",))
    app = fake.app()
    app.middlewares.append(faults.middleware)
    async with serve(app) as url:
        src = CcxtSource("binance", Endpoints(url), retry=FAST_RETRY)
        try:
            with pytest.raises(RetryExhausted, match="failed 6 times"):
                await src.fetch_symbols()
        finally:
            await src.aclose()


async def test_rate_limit_and_api_errors_are_mapped() -> None:
    from aiohttp import web

    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"code": -1003, "msg": "Too many requests"}, status=429)

    async def refused(request: web.Request) -> web.Response:
        return web.json_response({"code": -1100, "msg": "Illegal characters"}, status=400)

    for handler, error in ((limited, RateLimited), (refused, ExchangeError)):
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", handler)
        async with serve(app) as url:
            src = CcxtSource(
                "binance",
                Endpoints(url),
                retry=FAST_RETRY,
                options={"fetchMarkets": {"types": ["spot"]}},
            )
            try:
                with pytest.raises(error):
                    await src.fetch_symbols()
            finally:
                await src.aclose()


async def test_trades_window_opening_just_before_a_crowded_ms(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    """A quiet stretch then the crowd: the window narrows, then grows back, and stays cheap."""
    start, end = T0 + HOUR_MS + 1_000_000, T0 + 2 * HOUR_MS
    rows, cursors = await drain(source, start, end)
    assert_frame_equal(rows, fake.tape.truth(start, end))
    assert len(cursors) <= 14


async def test_paginator_with_many_segments_equals_the_truth(
    source: CcxtSource, fake: BinanceQuirksFake
) -> None:
    """Driven by the core paginator, split into concurrent segments (ids proven contiguous)."""
    paginate = pytest.importorskip("dccd_core.transport.paginate")
    stats = paginate.PageStats()
    chunks = [
        chunk.rows
        async for chunk in paginate.paginate_trades(
            source, BTC, ns(T0), ns(T0 + 6 * HOUR_MS), min_split_pages=1, stats=stats
        )
    ]
    assert_frame_equal(pl.concat(chunks), fake.tape.truth(T0, T0 + 6 * HOUR_MS))
    assert stats.segments > 4


# -- acceptance: the shared fake Binance, through operations.backfill ---------------------


async def test_backfill_through_ccxt_equals_truth_and_the_native_source(tmp_path: Any) -> None:
    """Same store as the native Binance source: a 3-hour quiet gap ending on a ms of
    1,500 trades (more than a page), and a day of 1m candles with holes."""
    backfill_mod = pytest.importorskip("dccd_core.operations.backfill")
    from dccd_core.domain import DatasetKey, to_ns
    from dccd_core.sources.registry import build_source
    from dccd_core.storage import Store
    from dccd_core.transport import WeightLimiter
    from tests.fakes.binance import FakeBinance

    listing_ms = to_ns("2024-01-01") // NS_PER_MS
    fake = FakeBinance.default(listing_ms=listing_ms, weight_limit=10**9)
    data = fake.market()
    k_gap = data.quiet_every  # the first trade after the first quiet gap opens a burst
    start = ns(data.trade_ms_scalar(k_gap - 10_000))
    end = ns(data.trade_ms_scalar(k_gap + 10_000))
    trades_key = DatasetKey.of("binance", "BTC/USDT", "trades")
    candles_key = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
    c_start, c_end = to_ns("2024-01-02"), to_ns("2024-01-03")
    via_ccxt, native = Store(tmp_path / "ccxt"), Store(tmp_path / "native")
    async with serve(fake.app()) as url:
        ccxt_source = CcxtSource(
            "binance", Endpoints(url), options={"fetchMarkets": {"types": ["spot"]}}
        )
        try:
            for key, a, b in ((trades_key, start, end), (candles_key, c_start, c_end)):
                await backfill_mod.backfill(key, start=a, end=b, store=via_ccxt, source=ccxt_source)
        finally:
            await ccxt_source.aclose()
        native_source = build_source("binance", rest_url=url)
        native_source.http.limiter = WeightLimiter(10**9)
        try:
            for key, a, b in ((trades_key, start, end), (candles_key, c_start, c_end)):
                await backfill_mod.backfill(key, start=a, end=b, store=native, source=native_source)
        finally:
            await native_source.aclose()
    truth = fake.truth_trades(start, end)
    assert truth.group_by("ts").len()["len"].max() == data.burst_len
    assert (truth["ts"].diff().max() or 0) > 3 * 3_600 * 10**9  # the quiet gap is inside
    stored = via_ccxt.read(trades_key)
    assert_frame_equal(stored.sort("trade_id"), truth.sort("trade_id").select(stored.columns))
    assert_frame_equal(stored, native.read(trades_key))
    candles = via_ccxt.read(candles_key)
    c_truth = fake.truth_candles(c_start, c_end)
    assert 0 < c_truth.height < 1_440
    cols = ["ts", "open", "high", "low", "close", "volume"]
    assert_frame_equal(candles.select(cols), c_truth.select(cols))
    assert_frame_equal(candles.select(cols), native.read(candles_key).select(cols))
