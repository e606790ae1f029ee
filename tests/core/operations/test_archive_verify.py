"""``verify_archives`` after an archive-first backfill: the published checksums and a
REST sample agree with what was stored, and each kind of disagreement is reported."""

from __future__ import annotations

from typing import Any

from dccd_core.domain import NS_PER_MS, DatasetKey, to_ns
from dccd_core.operations.archive_verify import verify_archives
from dccd_core.operations.backfill import backfill
from dccd_core.storage import Store
from tests.fakes.archives import FakeArchives, archive_reader_on
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.kit import fast_source_on

CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
START, END = to_ns("2024-05-10"), to_ns("2024-05-13")


def _binance() -> FakeBinance:
    market = MarketData(7, to_ns("2024-01-01") // NS_PER_MS, den=20_000)
    return FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)


async def _verify_after_backfill(tmp_path: Any, spoil: Any = None) -> Any:
    binance = _binance()
    archives = FakeArchives(binance=binance)
    store = Store(tmp_path)
    async with archive_reader_on("binance", archives) as reader, fast_source_on(
        "binance", binance.app()
    ) as source:
        await backfill(
            CANDLES, start=START, end=END, store=store, source=source, archive_reader=reader
        )
        if spoil is not None:
            spoil(binance, archives)
        return await verify_archives(CANDLES, store, START, END, reader=reader, source=source)


async def test_everything_agrees(tmp_path: Any) -> None:
    found = await _verify_after_backfill(tmp_path)
    assert found.files == found.checked == 3 and not found.changed
    assert found.sample_file == "BTCUSDT-1m-2024-05-11.zip"
    assert found.sample is not None and found.sample[0] == to_ns("2024-05-11T12:00")
    assert found.stored_rows == found.rest_rows and found.rest_rows and found.rest_rows > 700
    assert found.passed and "3/3 archive file checksum(s) re-fetched" in found.describe()


async def test_a_file_replaced_since_ingestion_fails(tmp_path: Any) -> None:
    found = await _verify_after_backfill(
        tmp_path, lambda _b, archives: archives.replace("BTCUSDT-1m-2024-05-12.zip")
    )
    [change] = found.changed
    assert change.name == "BTCUSDT-1m-2024-05-12.zip" and change.now != change.recorded
    assert not found.passed and "1 changed since ingestion" in found.describe()


async def test_a_sample_that_rest_disagrees_with_fails(tmp_path: Any) -> None:
    def drop_a_bar(binance: FakeBinance, _archives: Any) -> None:
        binance.market().holes_ms = frozenset({to_ns("2024-05-11T12:30") // NS_PER_MS})

    found = await _verify_after_backfill(tmp_path, drop_a_bar)
    assert not found.changed
    assert found.stored_rows is not None and found.rest_rows == found.stored_rows - 1
    assert not found.passed and "rows, " in found.describe()


async def test_nothing_ingested_asks_nothing(tmp_path: Any) -> None:
    found = await verify_archives(CANDLES, Store(tmp_path), START, END)
    assert found.passed and found.files == 0
    assert found.describe() == "no archive files ingested in this window: nothing to verify"
