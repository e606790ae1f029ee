"""operations.backfill against the fake Kraken: the store must equal the exchange's truth.

End to end through the registry-built source. Kraken paces public REST at about one
request a second; the limiter is opened up so the test does not wait (pacing has its
own tests). Trades page forward by time (``since`` ns, exclusive, 1000 a page); the
tape puts a same-µs burst across each page boundary of the walk, so a cursor that
resumed after the page's last timestamp would lose the rest of the burst.

Only the last 720 bars of a span exist, which is also Kraken's page: a candle
backfill is at most one window, and anything older is refused before any request.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import DatasetKey, NoCapability, Span, now_ns
from dccd_core.operations.backfill import backfill
from dccd_core.sources.base import Source
from dccd_core.storage import Store
from tests.fakes.kit import fast_source_on, source_on
from tests.fakes.kraken import T0_US, KrakenFake

TRADES = DatasetKey.of("kraken", "BTC/USD", "trades")
T0 = T0_US * 1_000
PAGE = 1_000


def kraken(fake: KrakenFake, *, fast: bool = True) -> AbstractAsyncContextManager[Source]:
    return (fast_source_on if fast else source_on)("kraken", fake.app())


def _data_requests(fake: KrakenFake, what: str) -> list[dict[str, str]]:
    return [q for path, q in fake.requests if path.endswith(what)]


async def test_trades_stored_exactly_with_same_us_bursts_at_page_boundaries(
    tmp_path: Path,
) -> None:
    # Each burst straddles a page boundary of the walk from T0: page 1 holds trades
    # 0..999, the next asks again from the burst at 990 and holds 990..1989, and so on.
    fake = KrakenFake(bursts=((990, 25), (1_980, 30), (2_960, 60)))
    tape = fake.tapes["XXBTZUSD"]
    start, end = T0, tape[3_500][1] * 1_000
    truth = fake.truth_trades(TRADES.symbol, start, end)
    for first, size in fake.bursts:
        assert len({tape[i][1] for i in range(first, first + size)}) == 1
    store = Store(tmp_path)
    async with kraken(fake) as source:
        result = await backfill(TRADES, start=start, end=end, store=store, source=source)
    stored = store.read(TRADES)
    assert truth.height > 3 * PAGE
    assert stored.height == truth.height == result.rows_new
    by_id = [pl.col("ts"), pl.col("trade_id").cast(pl.Int64)]
    assert stored.sort(by_id).equals(truth.sort(by_id))
    for first, size in fake.bursts:  # every burst whole, none twice
        burst_ts = tape[first][1] * 1_000
        assert stored.filter(pl.col("ts") == burst_ts).height == size
    assert store.coverage(TRADES).covers(start, end)
    # each page ended inside a burst, and the next re-asked from 1 µs before it
    sinces = [int(q["since"]) for q in _data_requests(fake, "/Trades")]
    assert sinces[0] == start - 1_000
    assert [tape[first][1] * 1_000 - 1_000 for first, _ in fake.bursts] == sinces[1:4]


async def test_trades_without_ids_stored_exactly(tmp_path: Path) -> None:
    fake = KrakenFake(legacy=True)  # rows recorded before Kraken had trade ids
    tape = fake.tapes["XXBTZUSD"]
    start, end = T0, tape[3_500][1] * 1_000
    store = Store(tmp_path)
    async with kraken(fake) as source:
        await backfill(TRADES, start=start, end=end, store=store, source=source)
    stored = store.read(TRADES)
    truth = fake.truth_trades(TRADES.symbol, start, end)
    assert stored.height == truth.height and stored["trade_id"].is_unique().all()
    cols = ["ts", "price", "amount", "side"]
    assert stored.select(cols).sort(cols).equals(truth.select(cols).sort(cols))


async def test_candles_stored_exactly(tmp_path: Path) -> None:
    hour = Span.parse("1h")
    key = DatasetKey.of("kraken", "BTC/USD", "ohlc", hour)
    fake = KrakenFake()
    start = hour.floor(now_ns()) - 700 * hour.ns  # within the last 720 bars
    store = Store(tmp_path)
    async with kraken(fake) as source:
        result = await backfill(key, start=start, store=store, source=source)
    stored = store.read(key)
    truth = fake.truth_candles(key.symbol, hour, start, result.end_ts)
    assert 650 < truth.height <= 700
    assert stored.equals(truth.select(stored.columns))
    assert int(stored["ts"].max()) < fake.open_bar_s(hour) * 10**9  # type: ignore[arg-type]
    assert len(_data_requests(fake, "/OHLC")) == 1


async def test_no_capability_before_any_request(tmp_path: Path) -> None:
    fake = KrakenFake()
    hour = Span.parse("1h")
    key = DatasetKey.of("kraken", "BTC/USD", "ohlc", hour)
    store = Store(tmp_path)
    too_old = hour.floor(now_ns()) - 1_000 * hour.ns  # Kraken keeps only the last 720
    async with kraken(fake, fast=False) as source:
        with pytest.raises(NoCapability, match="kraken has no 2h candles"):
            await backfill(DatasetKey.of("kraken", "BTC/USD", "ohlc", "2h"),
                           start=too_old, store=store, source=source)
        assert fake.requests == []  # not even the pair list
        with pytest.raises(NoCapability, match="only the last 720 1h candles"):
            await backfill(key, start=too_old, store=store, source=source)
    assert _data_requests(fake, "/OHLC") == []  # at most the pair list was asked
    assert store.read(key).height == 0
