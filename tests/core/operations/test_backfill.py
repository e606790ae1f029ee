"""operations.backfill against the fake Binance: the store must equal the exchange's truth.

Sizes: 30 days of 1m candles and ~200k trades here (seconds); the full-size checks
(a year of 1m candles, >= 1M trades, 10M trades for memory) live in
``bench/bench_backfill.py``, which asserts the same equality.
"""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import polars as pl
import pytest

from dccd_core.domain import (
    NS_PER_DAY,
    NS_PER_MS,
    Capability,
    ConfigError,
    DatasetKey,
    DataType,
    NoCapability,
    Span,
    UnknownSymbol,
    now_ns,
    to_ns,
)
from dccd_core.operations.backfill import BackfillProgress, backfill, find_origin
from dccd_core.sources.binance import BinanceSource
from dccd_core.storage import Store
from dccd_core.transport import WeightLimiter
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.kit import fast_source_on, source_on
from tests.fakes.server import FaultInjector

LISTING = "2024-01-01"
LISTING_MS = to_ns(LISTING) // NS_PER_MS


def _fake(**kwargs: Any) -> FakeBinance:
    kwargs.setdefault("weight_limit", 10**9)
    return FakeBinance.default(listing_ms=LISTING_MS, **kwargs)


def _binance(fake: FakeBinance, *, fast: bool = True) -> AbstractAsyncContextManager[Any]:
    """A registry-built Binance source pointed at the fake (limiter opened up if fast)."""
    return (fast_source_on if fast else source_on)("binance", fake.app())


def _key(data_type: str = "ohlc", span: str | None = "1m", symbol: str = "BTC/USDT") -> DatasetKey:
    return DatasetKey.of("binance", symbol, data_type, span)


async def test_candles_month_stored_exactly_with_holes(tmp_path: Any) -> None:
    fake = _fake()
    store = Store(tmp_path)
    start, end = to_ns("2024-02-01"), to_ns("2024-03-02")
    reports: list[BackfillProgress] = []
    async with _binance(fake) as source:
        result = await backfill(
            _key(), start=start, end=end, store=store, source=source, progress=reports.append
        )
    truth = fake.truth_candles(start, end)
    stored = store.read(_key())
    assert truth.height < 30 * 1440  # the fake has holes
    assert stored.equals(truth.select(stored.columns))
    assert result.rows_fetched == truth.height == result.rows_new
    windows = math.ceil(30 * 1440 / 1000)
    assert fake.requests["klines"] == windows == result.requests  # exchangeInfo is not counted
    assert store.coverage(_key()).covers(start, end)
    assert store.holes(_key(), start, end) == []
    assert reports and reports[-1].windows_done == reports[-1].windows_total == windows


async def test_trades_200k_exact_bursts_across_pages_minimal_requests(tmp_path: Any) -> None:
    fake = _fake()
    data = fake.market()
    store = Store(tmp_path)
    start = to_ns("2024-01-01")
    end = start + 20_000_000 * NS_PER_MS  # 200k trades at 10/s, with bursts
    async with _binance(fake) as source:
        result = await backfill(
            _key("trades", None), start=start, end=end, store=store, source=source
        )
    truth = fake.truth_trades(start, end)
    stored = store.read(_key("trades", None))
    assert truth.height >= 200_000
    # same-ms bursts of 1500 trades (> one page) are all there
    assert truth.group_by("ts").len().get_column("len").max() == data.burst_len
    assert stored.height == truth.height
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))
    minimum = math.ceil(truth.height / 1000)
    assert fake.requests["aggTrades"] <= 1.02 * minimum
    assert result.rows_new == truth.height
    assert store.coverage(_key("trades", None)).covers(start, end)


async def test_faults_store_identical_to_truth(tmp_path: Any) -> None:
    faults = FaultInjector(rate=0.10, seed=3, slow_s=0.05)
    fake = _fake(faults=faults)
    store = Store(tmp_path)
    start = to_ns("2024-01-02")
    end = start + 8_000_000 * NS_PER_MS  # ~80k trades
    c_start, c_end = to_ns("2024-01-01"), to_ns("2024-01-11")
    async with _binance(fake) as source:
        source.http.retry = replace(source.http.retry, base_s=0.01, max_s=0.05, attempts=12)
        trades = await backfill(
            _key("trades", None), start=start, end=end, store=store, source=source
        )
        candles = await backfill(_key(), start=c_start, end=c_end, store=store, source=source)
    assert sum(faults.counts.values()) >= 5
    assert trades.retries + candles.retries > 0
    truth = fake.truth_trades(start, end)
    stored = store.read(_key("trades", None))
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))
    c_truth = fake.truth_candles(c_start, c_end)
    assert store.read(_key()).equals(c_truth)


async def test_weight_limit_respected_no_ban(tmp_path: Any) -> None:
    """A tight server limit (60 weight per 1 s window): the client's limiter, fed by
    X-MBX-USED-WEIGHT-1M, keeps it below the limit; never a 418."""
    fake = _fake(weight_limit=60, window_s=1.0)
    store = Store(tmp_path)
    start = to_ns("2024-01-02")
    end = start + 4_000_000 * NS_PER_MS  # 40k trades -> ~40 pages of weight 4
    async with source_on("binance", fake.app()) as source:
        limiter = WeightLimiter(60, usage_header="X-MBX-USED-WEIGHT-1M", window_s=1.0)
        source.http.limiter = limiter
        await backfill(_key(), start="2024-01-01", end="2024-01-15", store=store, source=source)
        await backfill(_key("trades", None), start=start, end=end, store=store, source=source)
    assert fake.statuses[418] == 0
    weight = 4 * fake.requests["aggTrades"] + 2 * fake.requests["klines"]
    assert weight > 3 * 60  # the run needed several server windows
    assert limiter.waited_s > 1.0
    assert store.read(_key("trades", None)).height == fake.truth_trades(start, end).height


async def test_rejections_before_any_data_page(tmp_path: Any) -> None:
    fake = _fake()
    store = Store(tmp_path)

    class Narrow(BinanceSource):
        capability = Capability(
            "binance",
            tuple(
                replace(f, spans=(Span.parse("1m"), Span.parse("1h"))) if f.spans else f
                for f in BinanceSource.capability.features
                if f.data_type is not DataType.TRADES
            ),
        )

    async with source_on("binance", fake.app()) as source:
        narrow = Narrow(source.http, source.endpoints)
        with pytest.raises(UnknownSymbol, match="does not list DOGE/USDT"):
            await backfill(
                _key(symbol="DOGE/USDT"), start="2024-02-01", store=store, source=source
            )
        with pytest.raises(NoCapability, match="no 5m candles"):
            await backfill(_key(span="5m"), start="2024-02-01", store=store, source=narrow)
        with pytest.raises(NoCapability, match="cannot serve trades"):
            await backfill(_key("trades", None), start="2024-02-01", store=store, source=narrow)
        with pytest.raises(ConfigError, match=r"ends .* before it starts"):
            await backfill(
                _key(), start="2024-02-02", end="2024-02-01", store=store, source=source
            )
        with pytest.raises(NoCapability, match="COIN-M"):
            await backfill(
                _key(symbol="BTC/USD:BTC"), start="2024-02-01", store=store, source=source
            )
    assert fake.data_requests == 0
    assert store.datasets() == []


async def test_start_last_resumes_without_duplicates(tmp_path: Any) -> None:
    fake = _fake()
    store = Store(tmp_path)
    key = _key("trades", None)
    start = to_ns("2024-01-03")
    mid, end = start + 600_000 * NS_PER_MS, start + 1_200_000 * NS_PER_MS
    async with _binance(fake) as source:
        await backfill(key, start=start, end=mid, store=store, source=source)
        before = fake.requests["aggTrades"]
        second = await backfill(key, start="last", end=end, store=store, source=source)
        c1 = await backfill(
            _key(), start="2024-01-05", end="2024-01-06", store=store, source=source
        )
        c2 = await backfill(_key(), start="last", end="2024-01-07", store=store, source=source)
    assert second.start_ts >= mid - NS_PER_MS
    assert fake.requests["aggTrades"] - before <= math.ceil(6_000 / 1000) + 2
    stored = store.read(key)
    truth = fake.truth_trades(start, end)
    assert stored.get_column("trade_id").n_unique() == stored.height == truth.height
    assert c2.start_ts == to_ns("2024-01-06")  # right after the last stored bar
    assert c1.rows_new + c2.rows_new == store.read(_key()).height


async def test_start_origin_finds_listing(tmp_path: Any) -> None:
    listing_ms = LISTING_MS + 12_345 * 60_000 + 17  # mid-bar, odd ms
    fake = FakeBinance(
        markets={("spot", "BTCUSDT"): MarketData(5, listing_ms, hole_every=10**9)},
        weight_limit=10**9,
    )
    store = Store(tmp_path)
    async with _binance(fake) as source:
        candle_origin = await find_origin(source, _key(), now_ns())
        trade_origin = await find_origin(source, _key("trades", None), now_ns())
        probes = fake.data_requests
        result = await backfill(
            _key(span="1d"), start="origin", end="2024-03-01", store=store, source=source
        )
    assert candle_origin == (listing_ms - listing_ms % 60_000) * NS_PER_MS
    assert trade_origin == listing_ms * NS_PER_MS
    assert probes < 60  # probing, not paging from 1970
    assert result.start_ts == to_ns("2024-01-09")  # the listing day's bar
    assert store.read(_key(span="1d")).height == 60 - 8


async def test_open_candle_never_stored_and_book_snapshot(tmp_path: Any) -> None:
    fake = FakeBinance.default(
        listing_ms=(now_ns() - 3 * NS_PER_DAY) // NS_PER_MS, weight_limit=10**9
    )
    store = Store(tmp_path)
    key = _key(span="1h")
    async with _binance(fake) as source:
        result = await backfill(key, start="origin", store=store, source=source)
        book = await backfill(_key("book", None), store=store, source=source)
    span = Span.parse("1h")
    stored = store.read(key)
    assert stored.get_column("ts").max() < span.floor(now_ns())
    assert result.end_ts <= span.floor(now_ns())
    snapshot = store.read(_key("book", None))
    assert book.rows_fetched == snapshot.height == 40  # depth 20, both sides
    assert snapshot.filter(pl.col("side") == "bid").get_column("level").to_list() == list(range(20))


async def test_429s_pause_everything_and_never_become_a_ban(tmp_path: Any) -> None:
    """No client-side pacing at all: the fake answers 429 + Retry-After past 40 weight
    per 1 s window; the pause gate stops every request until then, so no 418 follows."""
    fake = _fake(weight_limit=40, window_s=1.0)
    store = Store(tmp_path)
    start = to_ns("2024-01-02")
    end = start + 2_000_000 * NS_PER_MS  # 20k trades, ~20 pages of weight 4
    async with source_on("binance", fake.app()) as source:
        source.http.limiter = None
        result = await backfill(
            _key("trades", None), start=start, end=end, store=store, source=source
        )
    assert fake.statuses[429] > 0 and result.rate_limit_pauses > 0
    assert fake.statuses[418] == 0
    truth = fake.truth_trades(start, end)
    assert store.read(_key("trades", None)).height == truth.height == result.rows_fetched
