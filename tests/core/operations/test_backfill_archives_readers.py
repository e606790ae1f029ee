"""Archive-first backfill end to end: the real archive readers (Binance, BitMEX) on the
fake archive host, the exchange's REST fake for the tail and the fallbacks, both
serving the same seeded truth. Whatever mix delivered the rows, the store equals the
truth; the ledger and the footers say which files the rows came from."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from dccd_core.domain import NS_PER_DAY, NS_PER_MS, DatasetKey, now_ns, to_ns
from dccd_core.operations.backfill import backfill
from dccd_core.storage import Store
from dccd_core.storage.archive_ledger import read_archive_ledger
from dccd_core.storage.files import read_footer
from dccd_core.storage.layout import list_period_files
from tests.fakes.archives import FakeArchives, archive_reader_on
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.kit import fast_source_on
from tests.fakes.server import serve

LISTING_MS = to_ns("2024-01-01") // NS_PER_MS
CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")


def _binance(listing_ms: int = LISTING_MS) -> FakeBinance:
    market = MarketData(7, listing_ms, den=20_000, burst_every=3_000, burst_len=30)
    return FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)


def _transports(store: Store, key: DatasetKey) -> dict[str, str]:
    out = {}
    for f in list_period_files(store.root, key):
        meta = read_footer(f.path).metadata or {}
        out[f.period] = meta[b"transport"].decode()
    return out


def _exact(store: Store, key: DatasetKey, truth: pl.DataFrame) -> None:
    stored = store.read(key)
    natural = "ts" if key.span is not None else "trade_id"
    assert stored.get_column(natural).n_unique() == stored.height
    assert stored.sort(natural).equals(truth.sort(natural).select(stored.columns))


async def test_recent_candles_months_days_and_the_rest_tail(tmp_path: Any) -> None:
    """The last 70 days up to now: closed months and days from µs spot files, the days
    not published yet over REST; the still-open bar is not stored."""
    now = now_ns()
    day0 = (now // NS_PER_DAY - 70) * NS_PER_DAY  # a whole closed month, always
    binance = _binance(listing_ms=day0 // NS_PER_MS)
    archives = FakeArchives(binance=binance)
    store = Store(tmp_path)
    async with archive_reader_on("binance", archives) as reader, fast_source_on(
        "binance", binance.app()
    ) as source:
        result = await backfill(
            CANDLES, start=day0, store=store, source=source, archive_reader=reader
        )
    end = CANDLES.span.floor(now) if CANDLES.span else now  # the open bar excluded
    truth = binance.truth_candles(day0, result.end_ts)
    assert result.end_ts <= end
    _exact(store, CANDLES, truth)
    assert result.archive_files_total == result.archive_files_done >= 5
    assert result.archive_rows + result.rest_rows == result.rows_fetched
    assert 0 < result.rest_rows < 3 * 1440  # the unpublished tail: about a day or two
    assert 1 <= binance.requests["klines"] <= 3  # the tail's windows only
    assert store.holes(CANDLES, day0, result.end_ts) == []
    ledger = read_archive_ledger(store.root, CANDLES)
    assert len(ledger) == result.archive_files_done
    assert all(e.sha256 == e.published_sha256 for e in ledger)
    assert any(e.name.count("-") == 3 for e in ledger)  # a monthly file: BTCUSDT-1m-YYYY-MM
    assert "rest" in _transports(store, CANDLES)[max(_transports(store, CANDLES))]


@pytest.mark.parametrize(
    "quirk",
    ["none", "missing", "bad_checksum", "truncated"],
)
async def test_trades_mixes_of_archive_and_rest_equal_the_truth(
    tmp_path: Any, quirk: str
) -> None:
    binance = _binance()
    bad = "BTCUSDT-aggTrades-2024-05-11.zip"
    archives = FakeArchives(binance=binance, **({} if quirk == "none" else {quirk: {bad}}))
    store = Store(tmp_path)
    start, end = to_ns("2024-05-10"), to_ns("2024-05-13")
    async with archive_reader_on("binance", archives) as reader, fast_source_on(
        "binance", binance.app()
    ) as source:
        result = await backfill(
            TRADES, start=start, end=end, store=store, source=source, archive_reader=reader
        )
    _exact(store, TRADES, binance.truth_trades(start, end))
    assert store.holes(TRADES, start, end) == []
    transports = _transports(store, TRADES)
    assert transports["2024-05-10"] == transports["2024-05-12"] == "archive"
    if quirk == "none":
        assert binance.requests["aggTrades"] == 0 and not result.fallbacks
        assert transports["2024-05-11"] == "archive"
    else:
        [fallback] = result.fallbacks
        assert fallback.file == bad and fallback.rest
        assert binance.requests["aggTrades"] > 0
        assert transports["2024-05-11"] == "rest"
        assert result.archive_files_done == 2
    names = {e.name for e in read_archive_ledger(store.root, TRADES)}
    assert (bad in names) == (quirk == "none")


async def test_registry_path_uses_archives_only_with_a_chosen_archive_origin(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``backfill`` builds source and reader itself: with DCCD_BINANCE_ARCHIVE_URL the
    files come from the archive host; with only the REST origin overridden (a fake, a
    testnet) never from the public archives."""
    binance = _binance()
    archives = FakeArchives(binance=binance)
    start, end = to_ns("2024-05-10"), to_ns("2024-05-12")
    async with serve(binance.app()) as rest, serve(archives.app()) as origin:
        monkeypatch.setenv("DCCD_BINANCE_REST_URL", rest)
        rest_only = await backfill(TRADES, start=start, end=end, store=Store(tmp_path / "a"))
        assert rest_only.archive_files_total == 0 and not archives.requests
        monkeypatch.setenv("DCCD_BINANCE_ARCHIVE_URL", origin)
        mixed = await backfill(TRADES, start=start, end=end, store=Store(tmp_path / "b"))
    assert mixed.archive_files_done == 2 and mixed.rest_rows == 0
    truth = binance.truth_trades(start, end)
    _exact(Store(tmp_path / "a"), TRADES, truth)
    _exact(Store(tmp_path / "b"), TRADES, truth)


@pytest.mark.parametrize("quirk", ["none", "truncated", "missing"])
async def test_bitmex_dump_then_rest_keeps_each_trade_once(tmp_path: Any, quirk: str) -> None:
    """BitMEX: one gzip of every symbol per day, no checksum. A truncated dump yields
    rows before it breaks; REST resumes from the last one read and the same trades come
    back with the same ids (trdMatchID): each is stored once."""
    from tests.fakes.bitmex import BitmexFake

    first = to_ns("2024-03-05T10:00") // NS_PER_MS
    bitmex = BitmexFake(first_ms=first, last_ms=first + 20 * 60_000)
    options = {} if quirk == "none" else {quirk: {"20240305.csv.gz"}}
    archives = FakeArchives(bitmex=bitmex, **options)  # type: ignore[arg-type]
    key = DatasetKey.of("bitmex", "BTC/USD:BTC", "trades")
    store = Store(tmp_path)
    start, end = to_ns("2024-03-04"), to_ns("2024-03-06")
    async with archive_reader_on(
        "bitmex", archives, block_bytes=16 * 1024
    ) as reader, fast_source_on("bitmex", bitmex.app()) as source:
        result = await backfill(
            key, start=start, end=end, store=store, source=source, archive_reader=reader
        )
    truth = bitmex.truth_trades(key.symbol, start, end)
    assert truth.height > 500
    _exact(store, key, truth)
    assert store.holes(key, start, end) == []
    if quirk == "none":
        assert result.rest_rows == 0 and result.archive_files_done == 2
    else:
        [fallback] = result.fallbacks
        assert fallback.file == "20240305.csv.gz" and fallback.rest
        if quirk == "truncated":
            assert 0 < result.archive_rows < truth.height  # rows read before the break stay
        assert result.rest_rows > 0
