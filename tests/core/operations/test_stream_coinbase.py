"""operations.stream against a fake Coinbase feed that drops, skips and crosses its book."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import DatasetKey, ExchangeError, Symbol
from dccd_core.operations.stream import FlushReport
from dccd_core.storage import Store
from tests.fakes.coinbase_ws import CoinbaseStreamFake
from tests.fakes.kit import checked_book_samples, stream_on

BTC_USD = Symbol("BTC", "USD")
TRADES = DatasetKey.of("coinbase", "BTC/USD", "trades")
BOOK = DatasetKey.of("coinbase", "BTC/USD", "book")


async def test_trades_equal_truth_across_drops_and_skips(tmp_path: Path) -> None:
    fake = CoinbaseStreamFake(drop_every=800, skip_rate=0.004, seed=3)
    store = Store(tmp_path)
    reports: list[FlushReport] = []
    final = await stream_on(
        fake, "coinbase", ["BTC/USD"], "trades", store=store, flush_interval_s=0.3,
        max_runtime_s=2.5, on_flush=reports.append
    )
    stored = store.read(TRADES)
    ids = stored.get_column("trade_id").cast(pl.Int64)
    lo, hi = int(ids.min()), int(ids.max())  # type: ignore[arg-type]
    # several drops and skipped matches happened, and every gap was healed from REST
    assert fake.drops >= 3 and final.reconnects >= 3
    skipped = [i for i in fake.skipped if lo <= i <= hi]
    assert len(skipped) >= 3
    assert set(skipped) <= set(ids.to_list())
    assert final.healed_gaps >= fake.drops + 1 and final.unhealed_gaps == 0
    # none missing, none twice: the ids of the window are consecutive, each stored once
    assert ids.is_unique().all() and hi - lo + 1 == stored.height > 1_000
    # and every row equals the tape (taker side from the maker's, µs timestamps)
    truth = fake.truth_trades(BTC_USD, int(stored["ts"][0]), int(stored["ts"][-1]) + 1)
    truth = truth.filter(pl.col("trade_id").cast(pl.Int64).is_between(lo, hi))
    by_id = [pl.col("ts"), pl.col("trade_id").cast(pl.Int64)]
    assert stored.sort(by_id).equals(truth.sort(by_id))
    # the same-µs burst longer than a REST page was streamed whole
    assert stored.group_by("ts").len()["len"].max() >= 1_000  # type: ignore[operator]
    assert reports[-1].final and final.lag_s is not None and final.lag_s < 5
    assert fake.subscriptions[0] == {"product_ids": ["BTC-USD"],
                                     "channels": ["matches", "heartbeat"]}


async def test_book_is_never_stored_crossed_and_resubscribes(tmp_path: Path) -> None:
    fake = CoinbaseStreamFake(crossed_at=(60, 200), book_interval_s=0.005)
    store = Store(tmp_path)
    final = await stream_on(
        fake, "coinbase", ["BTC/USD"], "book", store=store, book_depth=10, snapshot_interval_s=0.05,
        flush_interval_s=0.3, max_runtime_s=2.5
    )
    book = store.read(BOOK)
    best = book.filter(pl.col("level") == 0).pivot(on="side", index="ts", values="price")
    assert best.height > 10 and (best["bid"] < best["ask"]).all()
    # each crossed update made the book unusable: reset, resubscribed, fresh snapshot
    assert final.resyncs == len(fake.crossed_at)
    assert fake.connections == 1 + len(fake.crossed_at)
    # every stored snapshot stamped by an update equals the truth after that update
    # (a snapshot sampled right after a snapshot is stamped on receipt: not compared)
    checked = checked_book_samples(book, lambda ts: fake.book_history["BTC-USD"].get(ts // 1_000))
    assert checked >= 10


async def test_unknown_product_is_an_exchange_error(tmp_path: Path) -> None:
    with pytest.raises(ExchangeError, match="SOL-USD is not a valid product"):
        await stream_on(
            CoinbaseStreamFake(), "coinbase", ["SOL/USD"], "trades", store=Store(tmp_path),
            max_runtime_s=3.0,
        )
