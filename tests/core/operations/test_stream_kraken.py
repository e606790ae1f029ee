"""operations.stream against a fake Kraken v2 that drops, skips and breaks its checksums."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import DatasetKey, ExchangeError, Span, Symbol
from dccd_core.sources.base import Source
from dccd_core.storage import Store
from tests.fakes.kit import checked_book_samples, open_limiter, stream_on
from tests.fakes.kraken_ws import KrakenStreamFake

BTC_USD = Symbol("BTC", "USD")
TRADES = DatasetKey.of("kraken", "BTC/USD", "trades")
BOOK = DatasetKey.of("kraken", "BTC/USD", "book")


def _fast(source: Source) -> Source:
    """Kraken paces REST at ~1 request/s; heals on loopback need not wait."""
    return open_limiter(source, 60_000)


async def test_trades_equal_truth_across_drops_and_skips(tmp_path: Path) -> None:
    fake = KrakenStreamFake(drop_every_trades=600, skip_rate=0.01, seed=5)
    store = Store(tmp_path)
    final = await stream_on(
        fake, "kraken", ["BTC/USD"], "trades", store=store, flush_interval_s=0.3, max_runtime_s=2.5,
        prepare=_fast
    )
    stored = store.read(TRADES)
    ids = stored.get_column("trade_id").cast(pl.Int64)
    lo, hi = int(ids.min()), int(ids.max())  # type: ignore[arg-type]
    assert fake.drops >= 3 and final.reconnects >= 3
    skipped = [i for i in fake.skipped if lo <= i <= hi]
    assert len(skipped) >= 3 and set(skipped) <= set(ids.to_list())
    assert final.healed_gaps >= fake.drops and final.unhealed_gaps == 0
    # none missing, none twice, every row equal to the tape
    assert ids.is_unique().all() and hi - lo + 1 == stored.height > 1_000
    truth = fake.truth_trades(BTC_USD, int(stored["ts"][0]), int(stored["ts"][-1]) + 1)
    truth = truth.filter(pl.col("trade_id").cast(pl.Int64).is_between(lo, hi))
    by_id = [pl.col("ts"), pl.col("trade_id").cast(pl.Int64)]
    assert stored.sort(by_id).equals(truth.sort(by_id))
    assert fake.subscriptions[0] == {"channel": "trade", "symbol": ["BTC/USD"], "snapshot": False}


async def test_book_checksums_hold_and_a_mismatch_resubscribes(tmp_path: Path) -> None:
    fake = KrakenStreamFake(bad_checksum_at=(20,), skip_book_at=(70,))
    store = Store(tmp_path)
    final = await stream_on(
        fake, "kraken", ["BTC/USD"], "book", store=store, book_depth=10, snapshot_interval_s=0.05,
        flush_interval_s=0.3, max_runtime_s=2.5, prepare=_fast
    )
    # levels left the range silently many times; truncation kept every checksum right,
    # so the only resyncs are the two faults: a wrong checksum and a skipped update
    assert fake.pushed_out >= 10 and fake.bad_checksums and fake.skipped_book
    assert final.resyncs == 2 and fake.connections == 3
    book = store.read(BOOK)
    best = book.filter(pl.col("level") == 0).pivot(on="side", index="ts", values="price")
    assert best.height > 10 and (best["bid"] < best["ask"]).all()
    # (a snapshot sampled right after a snapshot is stamped on receipt: not compared)
    checked = checked_book_samples(book, lambda ts: fake.book_history["BTC/USD"].get(ts // 1_000))
    assert checked >= 10


async def test_unknown_pair_is_an_exchange_error(tmp_path: Path) -> None:
    with pytest.raises(ExchangeError, match="Currency pair not supported SOL/USD"):
        await stream_on(
            KrakenStreamFake(), "kraken", ["SOL/USD"], "trades", store=Store(tmp_path),
            max_runtime_s=3.0, prepare=_fast,
        )


async def test_closed_candles_equal_truth_and_skipped_bars_are_healed(tmp_path: Path) -> None:
    minute = Span.parse("1m")
    key = DatasetKey.of("kraken", "BTC/USD", "ohlc", minute)
    fake = KrakenStreamFake(ohlc_bar_s=0.04, skip_bars=(12, 13, 21))
    store = Store(tmp_path)
    final = await stream_on(
        fake, "kraken", ["BTC/USD"], "ohlc", span=minute, store=store, flush_interval_s=0.3,
        max_runtime_s=1.6, prepare=_fast
    )
    stored = store.read(key)
    first_bar = (int(stored["ts"].min()) // 10**9 - fake.ohlc_first_s) // 60  # type: ignore[arg-type]
    last_bar = (int(stored["ts"].max()) // 10**9 - fake.ohlc_first_s) // 60  # type: ignore[arg-type]
    assert first_bar < 12 and last_bar > 21  # the skipped bars are inside the window
    truth = fake.rest.truth_candles(BTC_USD, minute, int(stored["ts"].min()),
                                    int(stored["ts"].max()) + minute.ns)
    assert stored.equals(truth.select(stored.columns))  # skipped bars came from REST
    assert final.healed_gaps >= 2 and final.unhealed_gaps == 0
    assert fake.subscriptions[0] == {"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 1}
