"""Bybit daily trade files of the perpetuals against the fake archive host: rows equal
the REST fake's truth (execId = trdMatchID, inverse sizes turned into base amounts)."""

from __future__ import annotations

import polars as pl
import pytest

from dccd_core.domain import DatasetKey, NoCapability, to_ns
from dccd_core.sources.archives.base import ArchiveUnavailable
from tests.fakes.archives import FakeArchives, archive_reader_on, read_file
from tests.fakes.bybit import FakeBybit

LATER = to_ns("2026-01-01")
LINEAR = DatasetKey.of("bybit", "BTC/USDT:USDT", "trades")
INVERSE = DatasetKey.of("bybit", "BTC/USD:BTC", "trades")
# the fake's tapes start at 2024-02-29T21:37 and run past midnight
START, END = to_ns("2024-02-29"), to_ns("2024-03-02")


@pytest.mark.parametrize("key", [LINEAR, INVERSE], ids=str)
@pytest.mark.parametrize("newest_first", [False, True])
async def test_days_equal_the_truth(key: DatasetKey, newest_first: bool) -> None:
    bybit = FakeBybit()
    fake = FakeArchives(bybit=bybit, bybit_newest_first=newest_first)
    async with archive_reader_on("bybit", fake, block_bytes=8 * 1024) as reader:
        files = reader.plan_files(key, START, END, LATER)
        native = "BTCUSDT" if key is LINEAR else "BTCUSD"
        assert [f.path for f in files] == [
            f"/trading/{native}/{native}2024-02-29.csv.gz",
            f"/trading/{native}/{native}2024-03-01.csv.gz",
        ]
        rows = pl.concat([await read_file(reader, key, f) for f in files])
    truth = bybit.truth_trades(key.symbol, START, END)
    assert truth.height > 500
    assert rows.equals(truth)  # oldest first even from a newest-first file


async def test_spot_has_no_archive_and_a_missing_day_is_unavailable() -> None:
    fake = FakeArchives(bybit=FakeBybit(), missing={"BTCUSDT2024-02-29.csv.gz"})
    async with archive_reader_on("bybit", fake) as reader:
        with pytest.raises(NoCapability, match="publishes no archive files"):
            reader.plan_files(DatasetKey.of("bybit", "BTC/USDT", "trades"), START, END, LATER)
        first, _ = reader.plan_files(LINEAR, START, END, LATER)
        with pytest.raises(ArchiveUnavailable, match="missing"):
            await read_file(reader, LINEAR, first)


async def test_a_truncated_file_is_refused_before_any_row() -> None:
    """Files of unknown order are decompressed whole first: a cut gzip stream is found
    before the first batch, so no row of it reaches the store."""
    fake = FakeArchives(bybit=FakeBybit(), truncated={"BTCUSDT2024-02-29.csv.gz"})
    async with archive_reader_on("bybit", fake, block_bytes=4096) as reader:
        first, _ = reader.plan_files(LINEAR, START, END, LATER)
        batches = []
        with pytest.raises(ArchiveUnavailable, match="truncated or corrupt"):
            async for batch in reader.read(LINEAR, first):
                batches.append(batch)
    assert batches == []
