"""Binance archives (data.binance.vision) against the fake archive host: rows equal the
REST fake's truth (and the REST source's own pages), quirks handled or refused."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import polars as pl
import pytest

from dccd_core.domain import NS_PER_DAY, NS_PER_MS, ArchiveGranularity, DatasetKey, Span, to_ns
from dccd_core.sources.archives.base import ArchiveUnavailable
from dccd_core.sources.archives.decode import iter_csv_frames
from dccd_core.sources.archives.http_reader import FileState
from dccd_core.sources.binance.archives import BinanceArchives
from dccd_core.sources.registry import build_source
from tests.fakes.archives import FakeArchives, archive_reader_on, read_file, read_file_ingested
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.server import FaultInjector, serve

LISTING_MS = to_ns("2023-06-01") // NS_PER_MS
LATER = to_ns("2026-01-01")
CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
PERP_TRADES = DatasetKey.of("binance", "BTC/USDT:USDT", "trades")
PERP_CANDLES = DatasetKey.of("binance", "BTC/USDT:USDT", "ohlc", "1h")


def _binance(**market: int) -> FakeBinance:
    """Spot and USD-M BTCUSDT; trades sparse enough (one per ``den`` ms) for fast days."""
    options = {"den": 4_000, **market}
    return FakeBinance(
        markets={
            ("spot", "BTCUSDT"): MarketData(7, LISTING_MS, **options),  # type: ignore[arg-type]
            ("usdm", "BTCUSDT"): MarketData(9, LISTING_MS, **options),  # type: ignore[arg-type]
        }
    )


def _market(key: DatasetKey) -> str:
    return "spot" if key.symbol.market_kind == "spot" else "usdm"


def _truth(fake: FakeBinance, key: DatasetKey, start_ts: int, end_ts: int) -> pl.DataFrame:
    if key.span is not None:
        return fake.truth_candles(start_ts, end_ts, key.span.label, market=_market(key))
    return fake.truth_trades(start_ts, end_ts, market=_market(key))


async def _read_window(
    fake: FakeArchives, key: DatasetKey, start: str, end: str, **options: object
) -> tuple[pl.DataFrame, list[str]]:
    async with archive_reader_on("binance", fake, **options) as reader:
        files = reader.plan_files(key, to_ns(start), to_ns(end), LATER)
        frames = [await read_file(reader, key, f) for f in files]
    return pl.concat(frames), [f.name for f in files]


async def test_monthly_and_daily_klines_equal_the_truth() -> None:
    binance = _binance()
    rows, names = await _read_window(
        FakeArchives(binance=binance), CANDLES, "2024-01-30", "2024-03-02"
    )
    assert names == [
        "BTCUSDT-1m-2024-01-30.zip",
        "BTCUSDT-1m-2024-01-31.zip",
        "BTCUSDT-1m-2024-02.zip",
        "BTCUSDT-1m-2024-03-01.zip",
    ]
    truth = _truth(binance, CANDLES, to_ns("2024-01-30"), to_ns("2024-03-02"))
    assert rows.height > 40_000
    assert rows.equals(truth)


@pytest.mark.parametrize("key", [TRADES, PERP_TRADES, PERP_CANDLES], ids=str)
async def test_daily_files_equal_the_truth_header_or_not(key: DatasetKey) -> None:
    # USD-M files carry a header row, spot files none (the fake's default, as Binance)
    binance = _binance()
    rows, _ = await _read_window(FakeArchives(binance=binance), key, "2024-05-10", "2024-05-12")
    assert rows.height > 40
    assert rows.equals(_truth(binance, key, to_ns("2024-05-10"), to_ns("2024-05-12")))


async def test_header_detected_per_file_whatever_the_market() -> None:
    binance = _binance()
    fake = FakeArchives(binance=binance, header_markets=frozenset({"spot"}))
    rows, _ = await _read_window(fake, TRADES, "2024-05-10", "2024-05-11")
    assert rows.equals(_truth(binance, TRADES, to_ns("2024-05-10"), to_ns("2024-05-11")))


@pytest.mark.parametrize("key", [CANDLES, TRADES], ids=str)
async def test_microsecond_spot_files_from_2025(key: DatasetKey) -> None:
    # Binance spot switched to µs on 2025-01-01: one window across the switch
    binance = _binance()
    rows, _ = await _read_window(FakeArchives(binance=binance), key, "2024-12-31", "2025-01-02")
    assert rows.equals(_truth(binance, key, to_ns("2024-12-31"), to_ns("2025-01-02")))


async def test_replayed_aggregates_dropped_like_rest() -> None:
    binance = _binance()
    data = binance.market()
    k = data.first_k_at(to_ns("2024-05-10T06:00") // NS_PER_MS)
    data.replays = {k + 5: k + 3, k + 6: k + 4}
    rows, _ = await _read_window(FakeArchives(binance=binance), TRADES, "2024-05-10", "2024-05-11")
    truth = _truth(binance, TRADES, to_ns("2024-05-10"), to_ns("2024-05-11"))
    assert str(k + 5 + data.first_id) not in rows.get_column("trade_id").to_list()
    assert rows.equals(truth)


async def test_archive_rows_equal_the_rest_sources_pages() -> None:
    """The same span from data.binance.vision and from /api/v3: identical frames."""
    binance = _binance()
    start, end = to_ns("2024-05-10"), to_ns("2024-05-11")
    archive_klines, _ = await _read_window(
        FakeArchives(binance=binance), CANDLES, "2024-05-10", "2024-05-11"
    )
    archive_trades, _ = await _read_window(
        FakeArchives(binance=binance), TRADES, "2024-05-10", "2024-05-11"
    )
    page_end = start + 1000 * 60 * 10**9
    async with serve(binance.app()) as origin, build_source("binance", rest_url=origin) as source:
        rest_klines = await source.fetch_candles(CANDLES.symbol, Span.parse("1m"), start, page_end)
        page = await source.fetch_trades_page(TRADES.symbol, start, end, None)
    assert rest_klines.height > 900
    assert archive_klines.filter(pl.col("ts") < page_end).equals(rest_klines)
    assert page.rows.height > 100
    assert archive_trades.head(page.rows.height).equals(page.rows)
    assert archive_klines.schema == rest_klines.schema
    assert archive_trades.schema == page.rows.schema


async def test_a_missing_day_is_unavailable_and_the_others_read() -> None:
    binance = _binance()
    fake = FakeArchives(binance=binance, missing={"BTCUSDT-aggTrades-2024-05-11.zip"})
    async with archive_reader_on("binance", fake) as reader:
        files = reader.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-13"), LATER)
        with pytest.raises(ArchiveUnavailable) as caught:
            await read_file(reader, TRADES, files[1])
        rows = await read_file(reader, TRADES, files[2])
    assert caught.value.reason.startswith("missing")
    assert caught.value.name == "BTCUSDT-aggTrades-2024-05-11.zip"
    assert rows.equals(_truth(binance, TRADES, files[2].start_ts, files[2].end_ts))


async def test_a_bad_checksum_is_unavailable_before_any_row() -> None:
    name = "BTCUSDT-1m-2024-05-10.zip"
    fake = FakeArchives(binance=_binance(), bad_checksum={name})
    async with archive_reader_on("binance", fake) as reader:
        (file,) = reader.plan_files(CANDLES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
        batches = []
        read = reader.read(CANDLES, file)
        with pytest.raises(ArchiveUnavailable, match="checksum mismatch"):
            async for batch in read:
                batches.append(batch)
        assert batches == []
        assert read.ingested is None


async def test_a_truncated_zip_is_unavailable() -> None:
    name = "BTCUSDT-1m-2024-05-10.zip"
    fake = FakeArchives(binance=_binance(), truncated={name})
    async with archive_reader_on("binance", fake) as reader:
        (file,) = reader.plan_files(CANDLES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
        with pytest.raises(ArchiveUnavailable, match="truncated or corrupt"):
            await read_file(reader, CANDLES, file)


async def test_a_replaced_file_changes_its_recorded_sha256() -> None:
    binance = _binance()
    fake = FakeArchives(binance=binance)
    async with archive_reader_on("binance", fake) as reader:
        (file,) = reader.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
        first, before = await read_file_ingested(reader, TRADES, file)
        fake.replace(file.name)
        second, after = await read_file_ingested(reader, TRADES, file)
    assert before is not None and after is not None
    assert before.sha256 == before.published_sha256
    assert after.sha256 == after.published_sha256 != before.sha256
    assert before.rows == after.rows == first.height
    assert first.equals(_truth(binance, TRADES, file.start_ts, file.end_ts))
    assert not second.equals(first)  # one amount differs: the verification check's case


async def test_transient_faults_are_retried() -> None:
    binance = _binance()
    faults = FaultInjector(rate=0.4, seed=3, kinds=("500", "503", "reset"))
    fake = FakeArchives(binance=binance, faults=faults)
    rows, _ = await _read_window(fake, CANDLES, "2024-05-10", "2024-05-14")
    assert sum(faults.counts.values()) > 0
    assert rows.equals(_truth(binance, CANDLES, to_ns("2024-05-10"), to_ns("2024-05-14")))


async def test_batches_stay_bounded_and_the_temp_file_is_deleted(tmp_path: object) -> None:
    """A file is never materialised whole: with 32 KB blocks a day of trades comes in
    many small batches (each at most a block of text), and nothing stays on disk."""
    binance = _binance(den=500)  # ~170k aggregates in the day
    fake = FakeArchives(binance=binance)
    async with archive_reader_on(
        "binance", fake, block_bytes=32 * 1024, temp_dir=str(tmp_path)
    ) as reader:
        (file,) = reader.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
        read = reader.read(TRADES, file)
        heights = [batch.height async for batch in read]
        ingested = read.ingested
    truth = _truth(binance, TRADES, file.start_ts, file.end_ts)
    shortest_line = 40  # "id,price,qty,first,last,ms,True,True"
    assert max(heights) <= 32 * 1024 // shortest_line + 1
    assert len(heights) > 100
    assert sum(heights) == truth.height == (ingested.rows if ingested else -1)
    assert list(tmp_path.iterdir()) == []  # type: ignore[attr-defined]


async def test_an_abandoned_read_deletes_its_temp_file(tmp_path: object) -> None:
    fake = FakeArchives(binance=_binance())
    async with archive_reader_on("binance", fake, block_bytes=4096, temp_dir=str(tmp_path)) as r:
        (file,) = r.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
        reading = r.read(TRADES, file)
        async for _ in reading:
            break
        await reading.aclose()
        assert reading.ingested is None
    assert list(tmp_path.iterdir()) == []  # type: ignore[attr-defined]


def test_plan_uses_the_documented_paths() -> None:
    from dccd_core.sources.registry import build_archive_reader

    reader = build_archive_reader("binance")
    assert reader is not None
    files = reader.plan_files(PERP_CANDLES, to_ns("2024-01-01"), to_ns("2024-02-02"), LATER)
    assert [f.granularity for f in files] == [ArchiveGranularity.MONTHLY, ArchiveGranularity.DAILY]
    assert files[0].path == "/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip"
    assert files[0].checksum_path == files[0].path + ".CHECKSUM"
    assert files[1].path == "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02-01.zip"
    (trades,) = reader.plan_files(TRADES, to_ns("2024-02-01"), to_ns("2024-02-02"), LATER)
    assert trades.path == "/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-02-01.zip"
    assert files[1].end_ts - files[1].start_ts == NS_PER_DAY


async def test_a_missing_month_falls_back_to_its_daily_files() -> None:
    binance = _binance()
    fake = FakeArchives(binance=binance, missing={"BTCUSDT-1m-2024-02.zip"})
    async with archive_reader_on("binance", fake) as reader:
        (month,) = reader.plan_files(CANDLES, to_ns("2024-02-01"), to_ns("2024-03-01"), LATER)
        with pytest.raises(ArchiveUnavailable, match="missing"):
            await read_file(reader, CANDLES, month)
        days = reader.daily_files(CANDLES, month)
        assert len(days) == 29 and reader.daily_files(CANDLES, days[0]) == []
        rows = pl.concat([await read_file(reader, CANDLES, day) for day in days])
    assert rows.equals(_truth(binance, CANDLES, month.start_ts, month.end_ts))


async def test_a_backdated_aggregate_makes_the_file_implausible() -> None:
    """An aggregate stamped before an earlier id is refused as the REST page holding it
    is (``check_trade_id_order``), never sorted into place and stored."""
    binance = _binance()
    data = binance.market()
    k = data.first_k_at(to_ns("2024-05-10T06:00") // NS_PER_MS)
    data.backdated_ms = {k + 5: 3_600_000}
    async with archive_reader_on("binance", FakeArchives(binance=binance)) as reader:
        (file,) = reader.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
        with pytest.raises(ArchiveUnavailable, match="implausible"):
            await read_file(reader, TRADES, file)


async def test_reads_side_by_side_each_keep_their_own_record() -> None:
    """Two files read at once (the planner reads one ahead): each read's ``ingested``
    is its own file's, whichever finishes first."""
    binance = _binance()
    fake = FakeArchives(binance=binance)
    async with archive_reader_on("binance", fake, block_bytes=8 * 1024) as reader:
        a, b = reader.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-12"), LATER)
        read_a, read_b = reader.read(TRADES, a), reader.read(TRADES, b)
        rows_a: list[pl.DataFrame] = []
        rows_b: list[pl.DataFrame] = []
        async with read_a, read_b:
            # interleave the two reads, b ending first
            rows_a.append(await anext(read_a))
            rows_b.extend([batch async for batch in read_b])
            rows_a.extend([batch async for batch in read_a])
    assert read_a.ingested is not None and read_b.ingested is not None
    assert (read_a.ingested.file, read_b.ingested.file) == (a, b)
    assert read_a.ingested.sha256 != read_b.ingested.sha256
    for file, rows, read in ((a, rows_a, read_a), (b, rows_b, read_b)):
        truth = _truth(binance, TRADES, file.start_ts, file.end_ts)
        assert pl.concat(rows).equals(truth)
        assert read.ingested is not None and read.ingested.rows == truth.height


async def test_fetch_published_sha256_is_the_checksum_file_alone() -> None:
    fake = FakeArchives(binance=_binance())
    async with archive_reader_on("binance", fake) as reader:
        (file,) = reader.plan_files(CANDLES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
        published = await reader.fetch_published_sha256(file)
        _, ingested = await read_file_ingested(reader, CANDLES, file)
        fake.replace(file.name)
        replaced = await reader.fetch_published_sha256(file)
        fake.missing.add(file.name)
        gone = await reader.fetch_published_sha256(file)
    assert ingested is not None and published == ingested.sha256 == ingested.published_sha256
    assert replaced is not None and len(replaced) == 64 and replaced != published
    assert gone is None


async def test_bitmex_publishes_no_checksum() -> None:
    from tests.fakes.bitmex import BitmexFake

    first = to_ns("2024-03-05T10:00") // NS_PER_MS
    fake = FakeArchives(bitmex=BitmexFake(first_ms=first, last_ms=first + 60_000))
    key = DatasetKey.of("bitmex", "BTC/USD:BTC", "trades")
    async with archive_reader_on("bitmex", fake) as reader:
        (file,) = reader.plan_files(key, to_ns("2024-03-05"), to_ns("2024-03-06"), LATER)
        assert await reader.fetch_published_sha256(file) is None


def _agg_rows(lines: list[str]) -> pl.DataFrame:
    reader = BinanceArchives("http://127.0.0.1:9")
    (file,) = reader.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
    text = "".join(f"{i + 1},42000.5,0.1,{2 * i},{2 * i + 1},{1715299200000 + i},{m},True\n"
                   for i, m in enumerate(lines)).encode()  # fmt: skip
    state = FileState()
    frames = iter_csv_frames(io.BytesIO(text), file.name, reader.layout(TRADES))
    return pl.concat([reader.to_rows(TRADES, file, frame, state) for frame in frames])


def test_the_maker_flag_in_any_case_gives_the_taker_side() -> None:
    rows = _agg_rows(["True", "false", "TRUE", "False"])
    assert rows.get_column("side").to_list() == ["sell", "buy", "sell", "buy"]
    assert rows.get_column("trade_id").to_list() == ["1", "2", "3", "4"]


@pytest.mark.parametrize("maker", ["Maybe", "1", ""])
def test_a_maker_flag_neither_true_nor_false_refuses_the_file(maker: str) -> None:
    with pytest.raises(ArchiveUnavailable, match=r"unreadable CSV|implausible"):
        _agg_rows(["True", maker, "False"])


async def test_a_file_without_its_checksum_is_refused_without_waiting_for_it() -> None:
    """The checksum and the file are requested at once; a 404 on the checksum refuses
    the file at once and stops its download (here a body that would take 30 s)."""
    stopped = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".CHECKSUM"):
            await asyncio.sleep(0.05)
            return httpx.Response(404)

        async def body() -> AsyncIterator[bytes]:
            try:
                yield b"PK" * 4096
                await asyncio.sleep(30)
                yield b"never"
            finally:
                stopped.set()

        return httpx.Response(200, content=body())

    reader = BinanceArchives("http://archive.test", transport=httpx.MockTransport(handler))
    (file,) = reader.plan_files(TRADES, to_ns("2024-05-10"), to_ns("2024-05-11"), LATER)
    try:
        with pytest.raises(ArchiveUnavailable, match="no checksum file"):
            await asyncio.wait_for(read_file(reader, TRADES, file), 5)
        await asyncio.wait_for(stopped.wait(), 5)
    finally:
        await reader.aclose()


def test_agg_trades_required_columns_are_the_names_without_the_optional_tail() -> None:
    """``required`` is derived from ``names`` (one list), so they cannot disagree: a
    7-column file (USD-M, no best-match flag) has every required column."""
    from dccd_core.sources.binance.archives import _AGG_TRADES

    assert _AGG_TRADES.names == (*_AGG_TRADES.required, "is_best_match")
    assert len(_AGG_TRADES.required) == 7
