"""operations.backfill against the fake BitMEX: the store must equal the exchange's truth.

End to end through the registry-built source (its own limiter fed by BitMEX's
``x-ratelimit-remaining`` headers): trades paged by (ms, row offset) with same-ms
bursts at and across page boundaries, close-stamped candles stored by their open.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, NoCapability, Span, to_ns
from dccd_core.operations.backfill import backfill
from dccd_core.sources.base import Source
from dccd_core.sources.bitmex.rest import iso_ms
from dccd_core.storage import Store
from tests.fakes.bitmex import BitmexFake
from tests.fakes.kit import source_on

T0 = to_ns("2024-01-01T00:00:00Z")
TRADES = DatasetKey.of("bitmex", "BTC/USD:BTC", "trades")


def bitmex(fake: BitmexFake) -> AbstractAsyncContextManager[Source]:
    return source_on("bitmex", fake.app())


async def test_trades_stored_exactly_with_same_ms_bursts_at_page_boundaries(
    tmp_path: Path,
) -> None:
    start, end = T0, T0 + 20 * 60 * 10**9
    plain = BitmexFake(first_ms=T0 // NS_PER_MS, last_ms=end // NS_PER_MS)
    rows = plain.truth_trades(TRADES.symbol, start, end)
    # 40 more trades in the ms where the 2nd page ends; 2,500 (> 2 pages) in a later one
    edge_ms = int(rows["ts"][1_990]) // NS_PER_MS
    big_ms = int(rows["ts"][4_500]) // NS_PER_MS
    fake = BitmexFake(
        first_ms=plain.first_ms, last_ms=plain.last_ms, bursts={edge_ms: 40, big_ms: 2_500}
    )
    truth = fake.truth_trades(TRADES.symbol, start, end)
    store = Store(tmp_path)
    async with bitmex(fake) as source:
        result = await backfill(TRADES, start=start, end=end, store=store, source=source)
    stored = store.read(TRADES)
    assert truth.height > 5 * 1_000
    assert stored.height == truth.height == result.rows_new
    assert stored.sort("ts", "trade_id").equals(truth.sort("ts", "trade_id"))
    assert store.coverage(TRADES).covers(start, end)
    sent = [unquote(q) for q in fake.requests if q.startswith("/api/v1/trade?")]
    # the page ending inside the edge ms restarts AT it, skipping the rows already read
    assert any(f"startTime={iso_ms(edge_ms)}" in q and "&start=0" not in q for q in sent)
    inside = [q for q in sent if f"startTime={iso_ms(big_ms)}" in q]
    assert len(inside) >= 3  # the 2,500-trade millisecond is read with row offsets
    assert len(sent) <= truth.height // 1_000 + 3


async def test_candles_stored_by_open_time(tmp_path: Path) -> None:
    hour = Span.parse("1h")
    key = DatasetKey.of("bitmex", "BTC/USD:BTC", "ohlc", hour)
    fake = BitmexFake(first_ms=T0 // NS_PER_MS, last_ms=T0 // NS_PER_MS + 200 * 86_400_000)
    start, end = T0 + 5 * hour.ns, T0 + 2_500 * hour.ns  # 3 pages of 1,000
    store = Store(tmp_path)
    async with bitmex(fake) as source:
        await backfill(key, start=start, end=end, store=store, source=source)
    stored = store.read(key)
    truth = fake.truth_candles(key.symbol, hour, start, end)
    assert stored.height == truth.height == 2_495
    assert stored.equals(truth.select(stored.columns))
    assert stored["ts"][0] == start  # the bucket stamped start + 1h
    assert (stored.filter(pl.col("open") > pl.col("high")).height) > 0  # open = prev close
    assert len([q for q in fake.requests if "bucketed" in q]) == 3
    assert store.coverage(key).covers(start, end)


async def test_no_capability_before_any_request(tmp_path: Path) -> None:
    fake = BitmexFake(first_ms=T0 // NS_PER_MS, last_ms=T0 // NS_PER_MS + 86_400_000)
    key = DatasetKey.of("bitmex", "BTC/USD:BTC", "ohlc", "15m")
    store = Store(tmp_path)
    async with bitmex(fake) as source:
        with pytest.raises(NoCapability, match=r"1m 5m 1h 1d.*derive candles from trades"):
            await backfill(key, start=T0, end=T0 + 86_400 * 10**9, store=store, source=source)
    assert fake.requests == []  # not even the instrument list
    assert store.read(key).height == 0
