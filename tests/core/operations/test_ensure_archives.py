"""``ensure`` passes the dataset's ``archives`` mode and archive origin to its backfills:
Bybit trade days (no REST history) are ensured from the daily files, ``archives:
only`` fetches nothing over REST and ``off`` refuses what REST cannot serve."""

from __future__ import annotations

from pathlib import Path

import polars as pl
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


async def test_max_fetch_counts_the_archive_files_not_the_rest_pages(tmp_path: Path) -> None:
    """Jan and Feb 2024 (monthly files), Mar 1 and 2 (daily files), then half of Mar 3
    over REST: 4 files x (file + checksum) + 1 page of 1m candles = 9 requests, where
    REST alone would be ~90 pages. 8 is refused naming the estimate, before any
    request; 9 is fetched, with exactly those requests, and the rows are the truth."""
    from dccd_core.operations.ensure import FetchTooLarge

    market = MarketData(7, to_ns("2023-12-01") // NS_PER_MS, den=20_000)
    binance = FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)
    archives = FakeArchives(binance=binance)
    start, end = to_ns("2024-01-01"), to_ns("2024-03-03T12:00")
    store = Store(tmp_path)
    async with serve(archives.app()) as archive_url, fast_source_on(
        "binance", binance.app()
    ) as source:

        async def ensure_with(max_fetch: int, **options: str) -> pl.DataFrame:
            return await ensure_async(
                "binance", "BTC/USDT", "ohlc", "1m", start=start, end=end, store=store,
                source=source, archive_url=archive_url, max_fetch=max_fetch, **options,
            )  # fmt: skip

        with pytest.raises(FetchTooLarge) as refused:
            await ensure_with(8)
        message = str(refused.value)
        assert "needs about 9 requests" in message and "max_fetch=8" in message, message
        assert "4 archive file(s), 8 requests (file + checksum each)" in message, message
        assert "1 page(s) of up to 1000 1m candles" in message, message
        # archives: off is the REST estimate again
        with pytest.raises(FetchTooLarge, match="needs about 90 requests"):
            await ensure_with(89, archives="off")
        # only: the files alone (the half day after them is left to a later run)
        with pytest.raises(FetchTooLarge, match="needs about 8 requests"):
            await ensure_with(7, archives="only")
        assert not archives.requests and binance.requests["klines"] == 0
        frame = await ensure_with(9)
    assert sum(archives.requests.values()) == 8 and binance.requests["klines"] == 1
    assert frame.equals(binance.truth_candles(start, end).select(frame.columns))


async def test_max_fetch_on_files_without_checksums_and_no_rest_history(
    tmp_path: Path,
) -> None:
    """Bybit trade days: a request per daily file (no checksum published) and no REST
    pages (its REST keeps only the latest trades): 2 requests for 2 days."""
    from dccd_core.operations.ensure import FetchTooLarge

    bybit = FakeBybit()
    async with serve(FakeArchives(bybit=bybit).app()) as archive_url, fast_source_on(
        "bybit", make_app(bybit)
    ) as source:
        with pytest.raises(FetchTooLarge) as refused:
            await ensure_async(
                "bybit", "BTC/USDT:USDT", "trades", start=START, end=END,
                store=Store(tmp_path), source=source, archive_url=archive_url, max_fetch=1,
            )  # fmt: skip
        assert "needs about 2 requests (2 archive file(s), 2 requests (file each))" in str(
            refused.value
        )
        frame = await ensure_async(
            "bybit", "BTC/USDT:USDT", "trades", start=START, end=END,
            store=Store(tmp_path), source=source, archive_url=archive_url, max_fetch=2,
        )  # fmt: skip
    truth = bybit.truth_trades(LINEAR.symbol, START, END)
    assert frame.sort("trade_id").equals(truth.sort("trade_id").select(frame.columns))
