"""operations.stream of Binance ``kline_1m``: only closed bars are stored, and bars lost
to drops or skipped frames are healed from REST by window (store == truth)."""

from __future__ import annotations

from pathlib import Path

from dccd_core.domain import NS_PER_MS, DatasetKey
from dccd_core.sources.binance.parse import parse_candles
from dccd_core.storage import Store
from tests.fakes.binance_ws import BinanceStreamFake
from tests.fakes.kit import stream_on

CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
STEP_MS = 60_000


async def test_only_closed_klines_are_stored_and_drops_are_healed(tmp_path: Path) -> None:
    # a 1m bar closes every 50 ms; the connection drops every 40 frames; bars 5 and 9
    # are never sent closed
    fake = BinanceStreamFake(kline_speed=1200.0, drop_every=40, kline_skip=(5, 9))
    store = Store(tmp_path)
    final = await stream_on(
        fake, "binance", ["BTC/USDT"], "ohlc", span="1m", store=store, flush_interval_s=0.3,
        max_runtime_s=2.5,
    )
    stored = store.read(CANDLES)
    ts = stored.get_column("ts")
    assert stored.height >= 25
    # contiguous 1m bars: the skipped and the dropped bars were healed
    assert (ts.diff().drop_nulls() == STEP_MS * NS_PER_MS).all()
    assert fake.first_kline_ms is not None
    for skipped in (5, 9):
        assert (fake.first_kline_ms + skipped * STEP_MS) * NS_PER_MS in ts.to_list()
    assert fake.drops >= 3 and final.reconnects >= 3
    assert final.healed_gaps >= 2 and final.unhealed_gaps == 0
    assert fake.kline_rest_requests >= 2
    # every stored bar carries its final values: an open (partial) bar was never stored
    first_ms, last_ms = int(ts[0]) // NS_PER_MS, int(ts[-1]) // NS_PER_MS
    truth = parse_candles(fake.truth_klines("1m", first_ms, last_ms + 1))
    assert stored.equals(truth)
    assert stored.height == final.total_rows
    # the partial values the stream saw are nowhere in the store
    assert (stored["close"] != stored["open"] + 0.25).all()
