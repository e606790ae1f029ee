"""operations.backfill against the fake Coinbase: the store must equal the exchange's truth.

End to end through the registry-built source, with Coinbase's own pacing (10 requests/s
is plenty here). Trades page backwards by id from the newest trade, so a window that is
not the latest is found by bisecting ids first; the tape's same-µs bursts (one longer
than a page) straddle the page boundaries of that walk.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import DatasetKey, NoCapability, Span
from dccd_core.operations.backfill import backfill
from dccd_core.sources.base import Source
from dccd_core.storage import Store
from tests.fakes.coinbase import T0_US, CoinbaseFake
from tests.fakes.kit import source_on

TRADES = DatasetKey.of("coinbase", "BTC/USD", "trades")
T0 = T0_US * 1_000
PAGE = 1_000


def coinbase(fake: CoinbaseFake) -> AbstractAsyncContextManager[Source]:
    return source_on("coinbase", fake.app())


def _data_requests(fake: CoinbaseFake, what: str) -> list[dict[str, str]]:
    return [q for path, q in fake.requests if path.endswith(what)]


async def test_trades_stored_exactly_across_pages_and_bursts(tmp_path: Path) -> None:
    fake = CoinbaseFake()
    tape = fake.tapes["BTC-USD"]
    # from inside the first burst's group to a point well before the newest trade
    start, end = tape[300][1] * 1_000, tape[4_100][1] * 1_000
    truth = fake.truth_trades(TRADES.symbol, start, end)
    store = Store(tmp_path)
    async with coinbase(fake) as source:
        result = await backfill(TRADES, start=start, end=end, store=store, source=source)
    stored = store.read(TRADES)
    assert truth.height > 3 * PAGE
    assert truth.group_by("ts").len()["len"].max() == 1_200  # a burst longer than a page
    assert stored.height == truth.height == result.rows_new
    by_id = [pl.col("ts"), pl.col("trade_id").cast(pl.Int64)]
    assert stored.sort(by_id).equals(truth.sort(by_id))
    assert store.coverage(TRADES).covers(start, end)
    pages = _data_requests(fake, "/trades")
    assert len(pages) == result.requests
    assert len(pages) >= 4 and any("after" in q for q in pages)  # by-id cursor, no time


async def test_candles_stored_exactly(tmp_path: Path) -> None:
    hour = Span.parse("1h")
    key = DatasetKey.of("coinbase", "BTC/USD", "ohlc", hour)
    start, end = T0, T0 + 1_000 * hour.ns  # 4 windows of at most 300 bars
    fake = CoinbaseFake()
    store = Store(tmp_path)
    async with coinbase(fake) as source:
        await backfill(key, start=start, end=end, store=store, source=source)
    stored = store.read(key)
    truth = fake.truth_candles(key.symbol, hour, start, end)
    assert 900 < truth.height < 1_000  # holes: hours without a trade
    assert stored.equals(truth.select(stored.columns))
    windows = _data_requests(fake, "/candles")
    assert len(windows) == 4 and all(q["granularity"] == "3600" for q in windows)
    assert store.coverage(key).covers(start, end)
    assert store.holes(key, start, end) == []


async def test_no_capability_before_any_request(tmp_path: Path) -> None:
    fake = CoinbaseFake()
    key = DatasetKey.of("coinbase", "BTC/USD", "ohlc", "4h")  # 4h is not a granularity
    store = Store(tmp_path)
    async with coinbase(fake) as source:
        with pytest.raises(NoCapability, match="coinbase has no 4h candles"):
            await backfill(key, start=T0, end=T0 + 86_400 * 10**9, store=store, source=source)
    assert fake.requests == []  # not even the product list
    assert store.read(key).height == 0
