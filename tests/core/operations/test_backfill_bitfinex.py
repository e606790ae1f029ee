"""operations.backfill against the fake Bitfinex: the store must equal the exchange's truth.

End to end through the registry-built source. Bitfinex budgets ~15 trade pages a
minute, so the limiter is opened up and the page limit lowered to 2,000 (the fake
honours any limit up to 10,000) to keep the test fast with several pages; the paging
logic (inclusive ms cursor, one-ms drain from the other end) is the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, NoCapability, Span, to_ns
from dccd_core.operations.backfill import backfill
from dccd_core.sources.bitfinex import BitfinexSource
from dccd_core.storage import Store
from tests.fakes.bitfinex import BitfinexFake
from tests.fakes.kit import open_limiter, source_on

T0 = to_ns("2024-01-01T00:00:00Z")
TRADES = DatasetKey.of("bitfinex", "BTC/USD", "trades")
PAGE = 2_000


@asynccontextmanager
async def bitfinex(fake: BitfinexFake, *, fast: bool = True) -> AsyncIterator[BitfinexSource]:
    async with source_on("bitfinex", fake.app()) as source:
        assert isinstance(source, BitfinexSource)
        if fast:
            open_limiter(source)
            source.trades_page_limit = PAGE
        yield source


async def test_trades_stored_exactly_with_same_ms_bursts_at_page_boundaries(
    tmp_path: Path,
) -> None:
    start, end = T0, T0 + 40 * 60 * 10**9
    plain = BitfinexFake(first_ms=T0 // NS_PER_MS, last_ms=end // NS_PER_MS)
    rows = plain.truth_trades(TRADES.symbol, start, end)
    # 300 more trades in the ms where the 2nd page ends; 3,000 (> a page) in a later one
    edge_ms = int(rows["ts"][2 * PAGE - 10]) // NS_PER_MS
    big_ms = int(rows["ts"][5 * PAGE]) // NS_PER_MS
    fake = BitfinexFake(
        first_ms=plain.first_ms, last_ms=plain.last_ms, bursts={edge_ms: 300, big_ms: 3_000}
    )
    truth = fake.truth_trades(TRADES.symbol, start, end)
    store = Store(tmp_path)
    async with bitfinex(fake) as source:
        result = await backfill(TRADES, start=start, end=end, store=store, source=source)
    stored = store.read(TRADES)
    assert truth.height > 4 * PAGE
    assert truth.filter(pl.col("ts") == big_ms * NS_PER_MS).height > PAGE
    assert stored.height == truth.height == result.rows_new
    assert stored.sort("ts", "trade_id").equals(truth.sort("ts", "trade_id"))
    assert store.coverage(TRADES).covers(start, end)
    sent = [q for q in fake.requests if "/trades/" in q]
    assert any(f"start={edge_ms}&" in q for q in sent)  # inclusive ms cursor, never +1 ms
    assert any("sort=-1" in q and f"start={big_ms}&end={big_ms}" in q for q in sent)


async def test_candles_stored_exactly(tmp_path: Path) -> None:
    minute = Span.parse("1m")
    key = DatasetKey.of("bitfinex", "BTC/USD", "ohlc", minute)
    start, end = T0, T0 + 25_000 * minute.ns  # 3 pages of 10,000
    fake = BitfinexFake(first_ms=T0 // NS_PER_MS, last_ms=end // NS_PER_MS + 60_000)
    store = Store(tmp_path)
    async with bitfinex(fake) as source:
        await backfill(key, start=start, end=end, store=store, source=source)
    stored = store.read(key)
    truth = fake.truth_candles(key.symbol, minute, start, end)
    assert 20_000 < truth.height < 25_000  # holes: minutes without a trade
    assert stored.equals(truth.select(stored.columns))
    assert len([q for q in fake.requests if "/candles/" in q]) == 3
    assert store.coverage(key).covers(start, end)
    assert store.holes(key, start, end) == []  # a hole in the data is not a coverage hole


async def test_no_capability_before_any_request(tmp_path: Path) -> None:
    fake = BitfinexFake(first_ms=T0 // NS_PER_MS, last_ms=T0 // NS_PER_MS + 86_400_000)
    key = DatasetKey.of("bitfinex", "BTC/USD", "ohlc", "4h")
    store = Store(tmp_path)
    async with bitfinex(fake, fast=False) as source:
        with pytest.raises(NoCapability, match="derive candles from trades"):
            await backfill(key, start=T0, end=T0 + 86_400 * 10**9, store=store, source=source)
    assert fake.requests == []  # not even the pair list
    assert store.read(key).height == 0
