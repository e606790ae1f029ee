"""``ensure`` passes the dataset's ``archives`` mode and archive origin to its backfills:
Bybit trade days (no REST history) are ensured from the daily files, ``archives:
only`` fetches nothing over REST and ``off`` refuses what REST cannot serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, NoCapability, to_ns
from dccd_core.operations.ensure import ensure_async
from dccd_core.storage import Store
from tests.fakes.archives import FakeArchives
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.bybit import FakeBybit, make_app
from tests.fakes.kit import fast_source_on
from tests.fakes.server import serve

LINEAR = DatasetKey.of("bybit", "BTC/USDT:USDT", "trades")
START, END = to_ns("2024-02-29"), to_ns("2024-03-02")  # the Bybit fake's tapes


async def test_bybit_trade_days_are_ensured_from_the_files(tmp_path: Path) -> None:
    bybit = FakeBybit()
    async with serve(FakeArchives(bybit=bybit).app()) as archive_url, fast_source_on(
        "bybit", make_app(bybit)
    ) as source:
        frame = await ensure_async(
            "bybit", "BTC/USDT:USDT", "trades", start=START, end=END,
            store=Store(tmp_path), source=source, archive_url=archive_url,
        )
        with pytest.raises(NoCapability, match="only the most recent trades"):
            await ensure_async(
                "bybit", "BTC/USDT:USDT", "trades", start=START, end=END,
                store=Store(tmp_path / "off"), source=source, archives="off",
            )
    truth = bybit.truth_trades(LINEAR.symbol, START, END)
    assert truth.height > 500
    assert frame.sort("trade_id").equals(truth.sort("trade_id").select(frame.columns))
    assert [p for p, _ in bybit.requests if "trade" in p] == []


async def test_archives_only_fetches_nothing_over_rest(tmp_path: Path) -> None:
    market = MarketData(7, to_ns("2024-01-01") // NS_PER_MS, den=20_000)
    binance = FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)
    archives = FakeArchives(binance=binance, missing={"BTCUSDT-1m-2024-05-11.zip"})
    start, end = to_ns("2024-05-10"), to_ns("2024-05-12")
    store = Store(tmp_path)
    async with serve(archives.app()) as archive_url, fast_source_on(
        "binance", binance.app()
    ) as source:
        frame = await ensure_async(
            "binance", "BTC/USDT", "ohlc", "1m", start=start, end=end, store=store,
            source=source, archives="only", archive_url=archive_url,
        )
    day = to_ns("2024-05-11")
    assert frame.equals(binance.truth_candles(start, day).select(frame.columns))
    assert binance.requests["klines"] == 0
    key = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
    assert store.holes(key, start, end) == [(day, end)]
