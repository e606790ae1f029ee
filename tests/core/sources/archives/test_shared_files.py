"""Shared archive downloads (``archives.shared_files``): BitMEX's one dump per day for
every symbol is downloaded once per process, however many symbols read it, at once or
one after another; the cache is bounded, never deletes a file being read, re-checks a
published checksum before reuse and leaves no temp file behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, to_ns
from dccd_core.operations.backfill import backfill
from dccd_core.sources.archives.base import ArchiveUnavailable
from dccd_core.sources.archives.shared_files import SharedDownloads
from dccd_core.storage import Store
from dccd_core.transport.download import Downloader
from tests.fakes.archives import FakeArchives, archive_reader_on
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.bitmex import BitmexFake
from tests.fakes.kit import fast_source_on
from tests.fakes.server import serve

XBTUSD = DatasetKey.of("bitmex", "BTC/USD:BTC", "trades")
ETHUSD = DatasetKey.of("bitmex", "ETH/USD:BTC", "trades")
START, END = to_ns("2024-03-04"), to_ns("2024-03-06")
DAYS = ("/data/trade/20240304.csv.gz", "/data/trade/20240305.csv.gz")
LATER = to_ns("2026-01-01")


def _bitmex() -> BitmexFake:
    """Twenty minutes of trades across midnight: both days' dumps hold rows."""
    first = to_ns("2024-03-04T23:50") // NS_PER_MS
    return BitmexFake(first_ms=first, last_ms=first + 20 * 60_000)


def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> SharedDownloads:
    """The process's shared downloads, fresh for one test (the readers take it when
    built)."""
    from dccd_core.sources.archives import http_reader

    cache = SharedDownloads()
    monkeypatch.setattr(http_reader, "SHARED_DOWNLOADS", cache)
    return cache


def _exact(store: Store, key: DatasetKey, truth: pl.DataFrame) -> None:
    stored = store.read(key)
    assert truth.height > 300
    assert stored.get_column("trade_id").n_unique() == stored.height
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))


@pytest.mark.parametrize("together", [True, False], ids=["side_by_side", "one_after_another"])
async def test_two_symbols_download_each_day_once(
    tmp_path: Path, together: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backfills build their readers from the registry (as the CLI and the assets
    do): each day's dump is requested once, and both symbols' rows equal the truth."""
    cache = _fresh_cache(monkeypatch)
    bitmex = _bitmex()
    archives = FakeArchives(bitmex=bitmex)
    store = Store(tmp_path)
    async with serve(archives.app()) as origin, fast_source_on("bitmex", bitmex.app()) as source:

        async def one(key: DatasetKey) -> None:
            result = await backfill(
                key, start=START, end=END, store=store, source=source, archive_url=origin
            )
            assert result.archive_files_done == 2 and result.rest_rows == 0

        if together:
            await asyncio.gather(one(XBTUSD), one(ETHUSD))
        else:
            await one(XBTUSD)
            await one(ETHUSD)
    assert {p: archives.requests[p] for p in DAYS} == {p: 1 for p in DAYS}
    for key in (XBTUSD, ETHUSD):
        _exact(store, key, bitmex.truth_trades(key.symbol, START, END))
    assert cache.downloads == 2 and cache.reuses == 2
    cache.clear()


async def test_a_missing_day_is_one_request_and_the_same_fallback_for_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fresh_cache(monkeypatch)
    bitmex = _bitmex()
    archives = FakeArchives(bitmex=bitmex, missing={"20240305.csv.gz"})
    store = Store(tmp_path)
    async with serve(archives.app()) as origin, fast_source_on("bitmex", bitmex.app()) as source:
        results = await asyncio.gather(
            *(
                backfill(key, start=START, end=END, store=store, source=source, archive_url=origin)
                for key in (XBTUSD, ETHUSD)
            )
        )
    for result in results:
        [fallback] = result.fallbacks
        assert fallback.file == "20240305.csv.gz" and fallback.rest
    assert archives.requests[DAYS[1]] == 1
    for key in (XBTUSD, ETHUSD):
        _exact(store, key, bitmex.truth_trades(key.symbol, START, END))


async def test_concurrent_leases_share_one_download_and_clean_up(tmp_path: Path) -> None:
    cache = SharedDownloads(max_files=4, max_bytes=1 << 30)
    archives = FakeArchives(bitmex=_bitmex(), latency_s=0.05)
    async with archive_reader_on("bitmex", archives) as reader:
        [file, _] = reader.plan_files(XBTUSD, START, END, LATER)
        leases = await asyncio.gather(
            *(cache.acquire(reader.downloader, file, str(tmp_path)) for _ in range(5))
        )
    assert archives.requests[file.path] == 1 and cache.downloads == 1
    assert len({lease.path for lease in leases}) == 1 and leases[0].path.is_file()
    assert leases[0].fetched.size == leases[0].path.stat().st_size
    for lease in leases:
        cache.release(lease)
    assert cache.cached_files == 1  # kept for the next reader, within bounds
    cache.clear()
    assert list(tmp_path.iterdir()) == []


async def test_bounds_evict_the_oldest_but_never_a_file_being_read(tmp_path: Path) -> None:
    cache = SharedDownloads(max_files=1, max_bytes=1 << 30)
    async with archive_reader_on("bitmex", FakeArchives(bitmex=_bitmex())) as reader:
        first, second = reader.plan_files(XBTUSD, START, END, LATER)
        held = await cache.acquire(reader.downloader, first, str(tmp_path))
        other = await cache.acquire(reader.downloader, second, str(tmp_path))
        assert held.path.is_file() and other.path.is_file()  # over bounds, both leased
        cache.release(held)
        assert not held.path.exists() and cache.cached_files == 1  # evicted on release
        cache.release(other)
        assert other.path.is_file() and cache.cached_bytes == other.fetched.size
        # a file bigger than the whole budget is never kept
        tiny = SharedDownloads(max_files=4, max_bytes=10)
        lease = await tiny.acquire(reader.downloader, first, str(tmp_path))
        assert tiny.cached_files == 0 and lease.path.is_file()
        tiny.release(lease)
        assert not lease.path.exists()
    cache.clear()
    assert list(tmp_path.iterdir()) == []


async def test_a_missing_file_is_one_request_for_every_waiter(tmp_path: Path) -> None:
    cache = SharedDownloads()
    archives = FakeArchives(bitmex=_bitmex(), missing={"20240304.csv.gz"}, latency_s=0.05)
    async with archive_reader_on("bitmex", archives) as reader:
        [file, _] = reader.plan_files(XBTUSD, START, END, LATER)
        outcomes = await asyncio.gather(
            *(cache.acquire(reader.downloader, file, str(tmp_path)) for _ in range(3)),
            return_exceptions=True,
        )
    assert all(isinstance(o, ArchiveUnavailable) and o.reason == "missing" for o in outcomes)
    assert archives.requests[file.path] == 1
    assert list(tmp_path.iterdir()) == [] and cache.cached_files == 0


async def test_a_republished_file_is_downloaded_again(tmp_path: Path) -> None:
    """Where a checksum is published, reuse re-checks it (one small request): a file
    replaced after publication is not served from the stale copy."""
    market = MarketData(7, to_ns("2024-01-01") // NS_PER_MS, den=20_000)
    binance = FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)
    archives = FakeArchives(binance=binance)
    key = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1d")
    cache = SharedDownloads()
    async with serve(archives.app()) as origin:
        downloader = Downloader("binance", origin)
        from dccd_core.sources.registry import build_archive_reader

        reader = build_archive_reader("binance", archive_url=origin)
        assert reader is not None
        [file] = reader.plan_files(key, to_ns("2024-03-01"), to_ns("2024-04-01"), LATER)
        first = await cache.acquire(downloader, file, str(tmp_path))
        cache.release(first)
        again = await cache.acquire(downloader, file, str(tmp_path))
        assert again is first and cache.reuses == 1
        cache.release(again)
        archives.replace(file.name)
        fresh = await cache.acquire(downloader, file, str(tmp_path))
        cache.release(fresh)
        await downloader.aclose()
        await reader.aclose()
    assert fresh is not first and fresh.fetched.sha256 != first.fetched.sha256
    assert not first.path.exists() and cache.downloads == 2
    assert archives.requests[file.path] == 2
    # the download, two reuse checks (one a mismatch), the new download's own check
    assert archives.requests[file.checksum_path or ""] == 4
    cache.clear()
    assert list(tmp_path.iterdir()) == []


async def test_cancelled_readers_neither_strand_a_waiter_nor_leak_a_lease(
    tmp_path: Path,
) -> None:
    """The downloading reader cancelled: its waiter downloads the file itself. A waiter
    cancelled: its lease is given back when the download lands (the file evictable)."""
    cache = SharedDownloads(max_files=1)
    archives = FakeArchives(bitmex=_bitmex(), latency_s=0.2)
    async with archive_reader_on("bitmex", archives) as reader:
        first, second = reader.plan_files(XBTUSD, START, END, LATER)
        owner = asyncio.create_task(cache.acquire(reader.downloader, first, str(tmp_path)))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(cache.acquire(reader.downloader, first, str(tmp_path)))
        await asyncio.sleep(0.05)
        owner.cancel()
        got = await waiter
        assert got.path.is_file() and cache.downloads == 1
        assert archives.requests[first.path] == 2  # the cancelled one, then the waiter's
        # now the other way round: the waiter goes away, the owner's download lands
        owner = asyncio.create_task(cache.acquire(reader.downloader, second, str(tmp_path)))
        await asyncio.sleep(0.05)
        waiter = asyncio.create_task(cache.acquire(reader.downloader, second, str(tmp_path)))
        await asyncio.sleep(0.05)
        waiter.cancel()
        mine = await owner
        await asyncio.sleep(0)
        assert mine.pins == 1  # the cancelled waiter's lease was given back
        cache.release(got)
        cache.release(mine)
    assert not got.path.exists() and cache.cached_files == 1  # max_files=1: oldest out
    cache.clear()
    assert list(tmp_path.iterdir()) == []
