"""Bybit v5 source: parsers on documented bodies, pages against the fake, capability."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, DataType, Span, Symbol, Transport, schema_for
from dccd_core.domain.errors import (
    ExchangeError,
    NoCapability,
    SourceError,
    UnexpectedPayload,
    UnknownSymbol,
)
from dccd_core.operations.backfill import backfill
from dccd_core.sources.bybit import CAPABILITY, BybitSource
from dccd_core.sources.bybit.parse import check_payload, parse_book, parse_candles, parse_trades
from dccd_core.sources.bybit.rest import build_candles_request
from dccd_core.sources.bybit.symbols import native_symbol, unified_symbol
from dccd_core.storage import Store
from dccd_core.transport.paginate import paginate_candles
from tests.fakes.bybit import NOW_MS, FakeBybit, make_app
from tests.fakes.kit import fake_source_fixture, fixture_loader

SPOT = Symbol("BTC", "USDT")
LINEAR = Symbol("BTC", "USDT", "USDT")
INVERSE = Symbol("BTC", "USD", "BTC")
USDC_PERP = Symbol("BTC", "USDC", "USDC")
load = fixture_loader("bybit")


fake_source = fake_source_fixture(FakeBybit, "bybit", app=make_app, source_type=BybitSource)


# -- parsers -----------------------------------------------------------------------------


def test_parse_candles_sorts_oldest_first_and_reads_strings() -> None:
    frame = parse_candles(load("kline_linear_1h.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.OHLC))
    assert frame["ts"].to_list() == [
        1_704_067_200_000 * NS_PER_MS,
        1_704_070_800_000 * NS_PER_MS,
        1_704_074_400_000 * NS_PER_MS,
    ]
    first = frame.row(0, named=True)
    assert first == {
        "ts": 1_704_067_200_000_000_000,
        "open": 42283.6,
        "high": 42400.9,
        "low": 42180.0,
        "close": 42376.2,
        "volume": 1500.001,
        "quote_volume": 63501234.5678,
        "trades": None,
    }


def test_parse_candles_inverse_swaps_volume_and_turnover() -> None:
    frame = parse_candles(load("kline_inverse_1d.json"), inverse=True)
    assert frame["volume"].to_list() == [46.25, 33.5]  # turnover, in BTC
    assert frame["quote_volume"].to_list() == [2_000_000.0, 1_500_000.0]  # USD contracts


def test_parse_trades_taker_side_and_same_ms_order() -> None:
    frame = parse_trades(load("recent_trade_linear.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.TRADES))
    assert frame["trade_id"].to_list() == [
        "c2b1a3d4-0000-5f00-9e00-000000000001",
        "c2b1a3d4-0000-5f00-9e00-000000000002",
        "c2b1a3d4-0000-5f00-9e00-000000000003",
    ]
    assert frame["side"].to_list() == ["buy", "buy", "sell"]
    assert frame["price"].to_list() == [42600.0, 42601.4, 42601.3]
    assert frame["ts"].to_list()[1:] == [1_704_078_000_100 * NS_PER_MS] * 2


def test_parse_book_spot_lists_asks_first_and_no_seq() -> None:
    frame = parse_book(load("orderbook_spot.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.BOOK))
    assert frame.rows() == [
        (1_704_078_000_300 * NS_PER_MS, "bid", 0, 42601.3, 0.51),
        (1_704_078_000_300 * NS_PER_MS, "bid", 1, 42600.01, 0.000912),
        (1_704_078_000_300 * NS_PER_MS, "ask", 0, 42601.31, 0.002384),
        (1_704_078_000_300 * NS_PER_MS, "ask", 1, 42602.5, 0.087513),
    ]
    assert parse_book(load("orderbook_spot.json"), 1).height == 2


def test_parse_book_inverse_converts_usd_contracts_to_btc() -> None:
    frame = parse_book(load("orderbook_inverse.json"), inverse=True)
    assert frame.filter(pl.col("level") == 0)["amount"].to_list() == [0.5, 80002 / 40000.5]


def test_error_bodies_raise() -> None:
    with pytest.raises(UnknownSymbol, match="Not supported symbols"):
        check_payload(load("error_symbol.json"))
    with pytest.raises(ExchangeError, match="10006"):
        parse_candles(load("error_rate.json"))
    with pytest.raises(UnexpectedPayload):
        check_payload({"code": 0})
    check_payload({"retCode": "0", "result": {}})  # stringified code is still success


def test_malformed_values_raise_unexpected_payload() -> None:
    body = load("kline_linear_1h.json")
    body["result"]["list"][0][2] = None
    with pytest.raises(UnexpectedPayload, match="high"):
        parse_candles(body)
    body = load("recent_trade_linear.json")
    body["result"]["list"][0]["side"] = "Hold"
    with pytest.raises(UnexpectedPayload, match="Hold"):
        parse_trades(body)
    body = load("recent_trade_linear.json")
    del body["result"]["list"][1]["price"]
    with pytest.raises(UnexpectedPayload, match="price"):
        parse_trades(body)


def test_numbers_sent_as_numbers_are_accepted() -> None:
    body = load("kline_linear_1h.json")
    body["result"]["list"] = [[1704067200000, 42283.6, 42400.9, 42180, 42376.2, 1500, 63501234]]
    assert parse_candles(body)["low"].to_list() == [42180.0]


def test_symbol_map_both_ways() -> None:
    assert native_symbol(SPOT) == "BTCUSDT"
    assert native_symbol(LINEAR) == "BTCUSDT"
    assert native_symbol(INVERSE) == "BTCUSD"
    assert native_symbol(USDC_PERP) == "BTCPERP"
    assert unified_symbol("BTCUSDT", "spot") == SPOT
    assert unified_symbol("BTCUSDT", "linear") == LINEAR
    assert unified_symbol("BTCUSD", "inverse") == INVERSE
    assert unified_symbol("BTCPERP", "linear") == USDC_PERP
    with pytest.raises(UnknownSymbol):
        native_symbol(Symbol("BTC", "USDT", "ETH"))


def test_candle_request_uses_inclusive_ms_bounds() -> None:
    start = 1_704_067_200_000 * NS_PER_MS
    path, params, _ = build_candles_request(
        LINEAR, Span.parse("1m"), start, start + 1000 * 60 * 10**9)
    assert path == "/v5/market/kline"
    assert params["category"] == "linear"
    assert params["interval"] == "1"
    assert params["start"] == "1704067200000"
    assert params["end"] == str(1_704_067_200_000 + 1000 * 60_000 - 1)


# -- capability ---------------------------------------------------------------------------


def test_capability_refuses_trade_history_naming_the_stream() -> None:
    with pytest.raises(NoCapability, match=r"stream: \[trades\]"):
        CAPABILITY.require(DataType.TRADES, Transport.REST, history=True)
    CAPABILITY.require(DataType.TRADES, Transport.REST, history=False)


def test_capability_refuses_unknown_span_and_depth() -> None:
    with pytest.raises(NoCapability, match="8h"):
        CAPABILITY.require(DataType.OHLC, span=Span.parse("8h"))
    with pytest.raises(NoCapability, match="use depth 50"):
        CAPABILITY.require(DataType.BOOK, depth=30, history=False)


# -- against the fake ------------------------------------------------------------------


async def _collect_candles(source: BybitSource, symbol: Symbol, span: Span, a: int, b: int):
    chunks = [c async for c in paginate_candles(source, symbol, span, a, b)]
    return pl.concat([c.rows for c in chunks]), len(chunks)


async def test_candle_backfill_over_three_pages_equals_truth(fake_source) -> None:
    fake, source = fake_source
    span = Span.parse("1m")
    end = span.floor(NOW_MS * NS_PER_MS)
    start = end - 2_500 * span.ns
    rows, pages = await _collect_candles(source, LINEAR, span, start, end)
    assert pages == 3
    truth = fake.truth_candles(LINEAR, span, start, end)
    assert 2_300 < truth.height < 2_500  # the fake has holes
    assert rows.equals(truth)
    klines = [params for path, params in fake.requests if path == "/v5/market/kline"]
    assert len(klines) == 3 and all(p["limit"] == "1000" for p in klines)


async def test_weekly_and_inverse_candles(fake_source) -> None:
    fake, source = fake_source
    span = Span.parse("1w")
    end = span.floor(NOW_MS * NS_PER_MS)
    start = end - 30 * span.ns
    rows, _ = await _collect_candles(source, INVERSE, span, start, end)
    assert rows.equals(fake.truth_candles(INVERSE, span, start, end))
    assert rows.height > 20
    assert all(span.floor(ts) == ts for ts in rows["ts"])  # Monday-aligned


async def test_recent_trades_are_the_latest_page(fake_source) -> None:
    fake, source = fake_source
    truth = fake.truth_trades(SPOT, 0, (NOW_MS + 1) * NS_PER_MS).tail(60)
    since = int(truth["ts"][0])
    page = await source.fetch_trades_page(SPOT, since, NOW_MS * NS_PER_MS, None)
    assert page.next_cursor is None
    assert page.rows.equals(truth)
    inverse = fake.truth_trades(INVERSE, 0, (NOW_MS + 1) * NS_PER_MS).tail(1000)
    page = await source.fetch_trades_page(
        INVERSE, int(inverse["ts"][0]), NOW_MS * NS_PER_MS, None
    )
    assert page.rows.equals(inverse)
    # A window reaching further back than the latest page cannot be served: an error
    # (a stream records an unhealed gap), never a page that looks complete.
    with pytest.raises(SourceError, match="latest 60 trades"):
        await source.fetch_trades_page(SPOT, 0, NOW_MS * NS_PER_MS, None)


async def test_book_and_symbols(fake_source) -> None:
    _, source = fake_source
    book = await source.fetch_book(SPOT, 5)
    assert book.height == 10
    assert book.filter(pl.col("side") == "bid")["price"].to_list() == [
        39999.5,
        39999.0,
        39998.5,
        39998.0,
        39997.5,
    ]
    symbols = await source.fetch_symbols()
    assert symbols == {SPOT, Symbol("ETH", "USDT"), LINEAR, USDC_PERP, INVERSE}
    with pytest.raises(UnknownSymbol, match="DOGE/USDT"):
        await source.check_symbol(Symbol("DOGE", "USDT"))


async def test_error_bodies_from_the_wire(fake_source) -> None:
    fake, source = fake_source
    span = Span.parse("1h")
    end = span.floor(NOW_MS * NS_PER_MS)
    # a documented transient code is retried (issue #10); a bad parameter is final
    fake.fail_next.append((10016, "Server error"))
    assert (await source.fetch_candles(LINEAR, span, end - 10 * span.ns, end)).height == 10
    assert source.http.stats.retries == 1
    fake.fail_next.append((10001, "params error: interval invalid"))
    with pytest.raises(ExchangeError, match="10001"):
        await source.fetch_candles(LINEAR, span, end - 10 * span.ns, end)
    with pytest.raises(UnknownSymbol):
        await source.fetch_candles(Symbol("NOPE", "USDT"), span, end - 10 * span.ns, end)


# -- through operations.backfill into a Store ----------------------------------------------


async def test_backfill_candles_into_the_store(fake_source, tmp_path: Path) -> None:
    fake, source = fake_source
    key = DatasetKey.of("bybit", "BTC/USDT", "ohlc", "1m")
    span = Span.parse("1m")
    end = span.floor(NOW_MS * NS_PER_MS) - 3 * span.ns
    start = end - 2_345 * span.ns
    store = Store(tmp_path)
    result = await backfill(key, start=start, end=end, store=store, source=source)
    assert result.requests >= 3
    stored = store.read(key)
    assert stored.equals(fake.truth_candles(SPOT, span, start, end))
    assert store.holes(key, start, end) == []


async def test_backfill_refuses_trade_history_before_any_request(fake_source, tmp_path) -> None:
    fake, source = fake_source
    key = DatasetKey.of("bybit", "BTC/USDT:USDT", "trades")
    with pytest.raises(NoCapability, match=r"stream: \[trades\]"):
        await backfill(
            key, start="2024-02-01", end="2024-02-02", store=Store(tmp_path), source=source
        )
    span_key = DatasetKey.of("bybit", "BTC/USDT", "ohlc", "8h")
    with pytest.raises(NoCapability, match="8h"):
        await backfill(span_key, start="2024-02-01", store=Store(tmp_path), source=source)
    assert fake.requests == []
    with pytest.raises(UnknownSymbol):
        await backfill(
            DatasetKey.of("bybit", "DOGE/USDT", "ohlc", "1h"),
            start="2024-02-01",
            end="2024-02-02",
            store=Store(tmp_path),
            source=source,
        )
    assert all(path.endswith("instruments-info") for path, _ in fake.requests)
