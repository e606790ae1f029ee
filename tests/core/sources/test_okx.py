"""OKX v5 source: parsers on documented bodies, tradeId paging against the fake, capability."""

from __future__ import annotations

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, DataType, Span, Symbol, Transport, schema_for
from dccd_core.domain.errors import ExchangeError, NoCapability, UnexpectedPayload, UnknownSymbol
from dccd_core.operations.backfill import backfill
from dccd_core.sources.okx import CAPABILITY, OkxSource
from dccd_core.sources.okx.parse import check_payload, parse_book, parse_candles, parse_trades
from dccd_core.sources.okx.rest import build_candles_request, build_trades_request
from dccd_core.sources.okx.symbols import Contract, native_symbol, unified_symbol
from dccd_core.storage import Store
from dccd_core.transport import RetryPolicy
from dccd_core.transport.paginate import paginate_candles, paginate_trades
from tests.fakes.kit import fake_source_fixture, fixture_loader, source_on
from tests.fakes.okx import NOW_MS, FakeOkx, make_app
from tests.fakes.server import FaultInjector

SPOT = Symbol("BTC", "USDT")
SWAP = Symbol("BTC", "USDT", "USDT")
INVERSE = Symbol("BTC", "USD", "BTC")
load = fixture_loader("okx")


fake_source = fake_source_fixture(FakeOkx, "okx", app=make_app, source_type=OkxSource)


# -- parsers -----------------------------------------------------------------------------


def test_parse_candles_drops_the_open_bar() -> None:
    frame = parse_candles(load("history_candles_spot_1h.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.OHLC))
    assert frame["ts"].to_list() == [1_704_067_200_000 * NS_PER_MS, 1_704_070_800_000 * NS_PER_MS]
    assert frame.row(1, named=True) == {
        "ts": 1_704_070_800_000 * NS_PER_MS,
        "open": 42376.2,
        "high": 42560.0,
        "low": 42301.8,
        "close": 42510.5,
        "volume": 987.12345678,
        "quote_volume": 41926573.120456789,
        "trades": None,
    }


def test_parse_candles_swap_volume_is_base_not_contracts() -> None:
    frame = parse_candles(load("history_candles_swap_1m.json"), swap=True)
    assert frame["volume"].to_list() == [3.0, 15.2]
    assert frame["quote_volume"].to_list() == [126860.4, 642897.5]


def test_parse_trades_oldest_first_with_taker_side() -> None:
    frame = parse_trades(load("history_trades_spot.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.TRADES))
    assert frame.rows() == [
        (1_704_077_999_001 * NS_PER_MS, "503118640", 42600.0, 1.0, "buy"),
        (1_704_078_000_100 * NS_PER_MS, "503118641", 42601.4, 0.5, "buy"),
        (1_704_078_000_100 * NS_PER_MS, "503118642", 42601.3, 0.0007316, "sell"),
    ]


def test_parse_trades_swap_contracts_to_base() -> None:
    frame = parse_trades(load("history_trades_swap.json"), contract=Contract(0.01, False))
    assert frame["amount"].to_list() == [3 * 0.01, 25 * 0.01]
    inverse = parse_trades(load("history_trades_swap.json"), contract=Contract(100.0, True))
    assert inverse["amount"].to_list() == [3 * 100.0 / 41999.9, 25 * 100.0 / 42000]


def test_parse_book_levels_and_contracts() -> None:
    frame = parse_book(load("books_swap.json"), contract=Contract(0.01, False))
    assert frame.schema == pl.Schema(schema_for(DataType.BOOK))
    assert frame.rows() == [
        (1_704_078_000_300 * NS_PER_MS, "bid", 0, 42000.0, 11392 * 0.01),
        (1_704_078_000_300 * NS_PER_MS, "bid", 1, 41999.9, 5 * 0.01),
        (1_704_078_000_300 * NS_PER_MS, "ask", 0, 42000.1, 12574 * 0.01),
        (1_704_078_000_300 * NS_PER_MS, "ask", 1, 42000.2, 146 * 0.01),
    ]


def test_error_bodies_and_malformed_values() -> None:
    with pytest.raises(UnknownSymbol, match="51001"):
        check_payload(load("error_instrument.json"))
    with pytest.raises(ExchangeError, match="Parameter bar error"):
        parse_candles(load("error_param.json"))
    with pytest.raises(UnexpectedPayload):
        check_payload([])
    body = load("history_candles_spot_1h.json")
    body["data"][1][8] = "2"
    with pytest.raises(UnexpectedPayload, match="confirm"):
        parse_candles(body)
    body = load("history_trades_spot.json")
    body["data"][0]["px"] = "n/a"
    with pytest.raises(UnexpectedPayload, match="n/a"):
        parse_trades(body)


def test_symbol_map_both_ways() -> None:
    assert native_symbol(SPOT) == "BTC-USDT"
    assert native_symbol(SWAP) == "BTC-USDT-SWAP"
    assert native_symbol(INVERSE) == "BTC-USD-SWAP"
    for symbol in (SPOT, SWAP, INVERSE):
        assert unified_symbol(native_symbol(symbol)) == symbol
    with pytest.raises(UnknownSymbol):
        unified_symbol("BTC-USD-240329")  # dated future: not a dccd symbol


def test_request_builders() -> None:
    end = 1_704_067_200_000 * NS_PER_MS + 1  # not on a ms: the end ms itself is inside
    path, params, _ = build_candles_request(SPOT, Span.parse("1d"), end - 86_400 * 10**11, end)
    assert path == "/api/v5/market/history-candles"
    assert params == {
        "instId": "BTC-USDT",
        "bar": "1Dutc",
        "after": "1704067200001",
        "limit": "100",
    }
    assert build_trades_request(SWAP, end, None).params == {
        "instId": "BTC-USDT-SWAP", "limit": "100", "type": "2", "after": "1704067200001"
    }  # fmt: skip
    assert build_trades_request(SWAP, end, "123").params["type"] == "1"


def test_capability() -> None:
    with pytest.raises(NoCapability, match="8h"):
        CAPABILITY.require(DataType.OHLC, span=Span.parse("8h"))
    with pytest.raises(NoCapability, match="use depth 400"):
        CAPABILITY.require(DataType.BOOK, depth=300, history=False)
    with pytest.raises(NoCapability, match="depths are 1, 5"):
        CAPABILITY.require(DataType.BOOK, depth=500, history=False)
    CAPABILITY.require(DataType.TRADES, Transport.REST, history=True)


# -- against the fake ------------------------------------------------------------------


async def test_candle_backfill_over_three_pages_equals_truth(fake_source) -> None:
    fake, source = fake_source
    span = Span.parse("5m")
    end = span.floor(NOW_MS * NS_PER_MS) + span.ns  # includes the open bar's window
    start = end - 250 * span.ns
    chunks = [c async for c in paginate_candles(source, SWAP, span, start, end)]
    rows = pl.concat([c.rows for c in chunks])
    assert len(chunks) == 3
    truth = fake.truth_candles(SWAP, span, start, end)
    assert rows.equals(truth)
    assert rows["ts"].max() == span.floor(NOW_MS * NS_PER_MS) - span.ns  # open bar dropped
    assert rows.height > 230


async def test_utc_daily_candles(fake_source) -> None:
    fake, source = fake_source
    span = Span.parse("1d")
    end = span.floor(NOW_MS * NS_PER_MS)
    start = end - 150 * span.ns
    chunks = [c async for c in paginate_candles(source, SPOT, span, start, end)]
    assert pl.concat([c.rows for c in chunks]).equals(fake.truth_candles(SPOT, span, start, end))


async def _trades(source: OkxSource, symbol: Symbol, start: int, end: int) -> pl.DataFrame:
    chunks = [c async for c in paginate_trades(source, symbol, start, end)]
    return pl.concat([c.rows for c in chunks]).sort("ts", "trade_id")


async def test_trade_backfill_keeps_every_same_ms_trade(fake_source) -> None:
    fake, source = fake_source
    tape = fake.tape("BTC-USDT")
    busiest = tape.busiest_ms()
    # End right after the 230-trade burst: the first (by-time) page is all one ms.
    start, end = tape.start_ms * NS_PER_MS, (busiest + 1) * NS_PER_MS
    rows = await _trades(source, SPOT, start, end)
    truth = fake.truth_trades(SPOT, start, end)
    assert rows["trade_id"].n_unique() == rows.height
    assert rows.equals(truth.sort("ts", "trade_id"))
    assert truth.filter(pl.col("ts") == busiest * NS_PER_MS).height >= 230
    pages = [q for p, q in fake.requests if p.endswith("history-trades")]
    assert pages[0]["type"] == "2" and all(q["type"] == "1" for q in pages[1:])
    assert len(pages) >= truth.height // 100


async def test_trade_window_starting_inside_a_burst(fake_source) -> None:
    fake, source = fake_source
    busiest = fake.tape("BTC-USDT-SWAP").busiest_ms()
    start, end = busiest * NS_PER_MS, (busiest + 3_600_000) * NS_PER_MS
    rows = await _trades(source, SWAP, start, end)
    truth = fake.truth_trades(SWAP, start, end).sort("ts", "trade_id")
    assert rows.equals(truth)
    assert rows.filter(pl.col("ts") == start).height >= 230
    assert rows["amount"].head(3).to_list() == truth["amount"].head(3).to_list()


async def test_inverse_trades_and_book(fake_source) -> None:
    fake, source = fake_source
    tape = fake.tape("BTC-USD-SWAP")
    start, end = tape.start_ms * NS_PER_MS, tape.end_ms * NS_PER_MS
    rows = await _trades(source, INVERSE, start, end)
    assert rows.equals(fake.truth_trades(INVERSE, start, end).sort("ts", "trade_id"))
    book = await source.fetch_book(INVERSE, 5)
    assert book.filter(pl.col("side") == "bid")["amount"][0] == 10 * 100.0 / 39999.9


async def test_symbols_and_errors(fake_source) -> None:
    fake, source = fake_source
    symbols = await source.fetch_symbols()
    assert symbols == {SPOT, Symbol("ETH", "USDT"), SWAP, INVERSE}
    with pytest.raises(UnknownSymbol):
        await source.check_symbol(Symbol("LUNA", "USDT"))
    with pytest.raises(UnknownSymbol):
        await source.fetch_trades_page(Symbol("NOPE", "USDT"), 0, NOW_MS * NS_PER_MS, None)
    # a documented transient code is retried (issue #10); a bad parameter is final
    fake.fail_next.append(("50026", "System error, please try again later."))
    assert (await source.fetch_book(SPOT, 5)).height == 10
    assert source.http.stats.retries == 1
    fake.fail_next.append(("51000", "Parameter bar error"))
    with pytest.raises(ExchangeError, match="51000"):
        await source.fetch_book(SPOT, 5)


# -- through operations.backfill into a Store ----------------------------------------------


async def test_backfill_trades_into_the_store(fake_source, tmp_path) -> None:
    fake, source = fake_source
    tape = fake.tape("BTC-USDT")
    key = DatasetKey.of("okx", "BTC/USDT", "trades")
    start, end = (tape.start_ms + 60_000) * NS_PER_MS, (tape.busiest_ms() + 1) * NS_PER_MS
    store = Store(tmp_path)
    result = await backfill(key, start=start, end=end, store=store, source=source)
    truth = fake.truth_trades(SPOT, start, end).sort("ts", "trade_id")
    stored = store.read(key).sort("ts", "trade_id")
    assert stored.equals(truth) and truth.height > 500
    assert result.requests >= truth.height // 100
    assert store.holes(key, start, end) == []


async def test_backfill_candles_never_stores_the_open_bar(fake_source, tmp_path) -> None:
    fake, source = fake_source
    key = DatasetKey.of("okx", "BTC/USDT:USDT", "ohlc", "1h")
    span = Span.parse("1h")
    end = span.floor(NOW_MS * NS_PER_MS) + span.ns  # the fake's current bar is still open
    start = end - 300 * span.ns
    store = Store(tmp_path)
    await backfill(key, start=start, end=end, store=store, source=source)
    stored = store.read(key)
    assert stored.equals(fake.truth_candles(SWAP, span, start, end))
    assert stored["ts"].max() < span.floor(NOW_MS * NS_PER_MS)


async def test_backfill_through_injected_faults_equals_a_clean_run(tmp_path) -> None:
    fake = FakeOkx()
    faults = FaultInjector(rate=0.25, seed=5, kinds=("500", "503", "reset", "truncate"))
    async with source_on("okx", make_app(fake, [faults.middleware])) as source:
        source.http.retry = RetryPolicy(attempts=10, base_s=0.005, max_s=0.05)
        tape = fake.tape("BTC-USDT-SWAP")
        key = DatasetKey.of("okx", "BTC/USDT:USDT", "trades")
        start, end = tape.start_ms * NS_PER_MS, tape.end_ms * NS_PER_MS
        store = Store(tmp_path)
        await backfill(key, start=start, end=end, store=store, source=source)
    assert sum(faults.counts.values()) >= 3
    truth = fake.truth_trades(SWAP, start, end).sort("ts", "trade_id")
    assert store.read(key).sort("ts", "trade_id").equals(truth)
