"""BitMEX daily trade dumps against the fake archive host: one file holds every symbol,
rows equal the REST fake's truth for the dataset's symbol."""

from __future__ import annotations

import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, to_ns
from dccd_core.sources.archives.base import ArchiveUnavailable
from tests.fakes.archives import FakeArchives, archive_reader_on, read_file, read_file_ingested
from tests.fakes.bitmex import BitmexFake

LATER = to_ns("2026-01-01")
XBTUSD = DatasetKey.of("bitmex", "BTC/USD:BTC", "trades")
ETHUSD = DatasetKey.of("bitmex", "ETH/USD:BTC", "trades")


def _bitmex() -> BitmexFake:
    """Twenty minutes of trades on 2024-03-05 (the fake draws per second, in Python)."""
    first = to_ns("2024-03-05T10:00") // NS_PER_MS
    return BitmexFake(first_ms=first, last_ms=first + 20 * 60_000)


@pytest.mark.parametrize("key", [XBTUSD, ETHUSD], ids=str)
async def test_a_day_equals_the_truth_of_its_symbol(key: DatasetKey) -> None:
    bitmex = _bitmex()
    fake = FakeArchives(bitmex=bitmex)
    async with archive_reader_on("bitmex", fake) as reader:
        files = reader.plan_files(key, to_ns("2024-03-04"), to_ns("2024-03-06"), LATER)
        assert [f.path for f in files] == [
            "/data/trade/20240304.csv.gz",
            "/data/trade/20240305.csv.gz",
        ]
        assert all(f.checksum_path is None for f in files)
        empty = await read_file(reader, key, files[0])
        rows, ingested = await read_file_ingested(reader, key, files[1])
    truth = bitmex.truth_trades(key.symbol, files[1].start_ts, files[1].end_ts)
    assert empty.height == 0
    assert truth.height > 500
    assert rows.equals(truth)
    assert ingested is not None and ingested.published_sha256 is None
    assert ingested.rows == truth.height and len(ingested.sha256) == 64


async def test_a_missing_day_and_a_truncated_gzip_are_unavailable() -> None:
    fake = FakeArchives(
        bitmex=_bitmex(), missing={"20240304.csv.gz"}, truncated={"20240305.csv.gz"}
    )
    async with archive_reader_on("bitmex", fake, block_bytes=16 * 1024) as reader:
        missing, cut = reader.plan_files(XBTUSD, to_ns("2024-03-04"), to_ns("2024-03-06"), LATER)
        with pytest.raises(ArchiveUnavailable, match="missing"):
            await read_file(reader, XBTUSD, missing)
        # no checksum to catch it first: the gzip stream's end does, after earlier batches
        read = reader.read(XBTUSD, cut)
        with pytest.raises(ArchiveUnavailable, match="truncated or corrupt"):
            async for _ in read:
                pass
        assert read.ingested is None
