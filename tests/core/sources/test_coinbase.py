"""Coinbase source: parsers on hand-written bodies, symbols, capability, paging against the fake."""

from __future__ import annotations

import polars as pl
import pytest

from dccd_core.domain import DataType, Span, Symbol
from dccd_core.domain.errors import ExchangeError, NoCapability, UnexpectedPayload, UnknownSymbol
from dccd_core.sources.coinbase import CAPABILITY, CoinbaseSource
from dccd_core.sources.coinbase import parse as cb
from dccd_core.sources.coinbase.symbols import native_symbol, unified_symbol
from dccd_core.transport.paginate import paginate_candles, paginate_trades
from tests.fakes.coinbase import CoinbaseFake
from tests.fakes.kit import (
    client_source,
    fake_source_fixture,
    fixture_loader,
    polars_schema,
    source_on,
)

BTC_USD = Symbol("BTC", "USD")
H = 3_600 * 10**9
load = fixture_loader("coinbase")


# -- parsers on hand-written bodies (documented shapes, made-up values) ---------------


def test_parse_candles_page_newest_first_low_before_high() -> None:
    frame = cb.parse_candles(load("candles_1h_BTC-USD.json"))
    assert frame.schema == polars_schema(DataType.OHLC)
    assert frame.height == 6  # 00:00..05:00: the bar opening at ``end`` is not returned
    assert frame["ts"].to_list() == [1708300800 * 10**9 + i * H for i in range(6)]
    first = frame.row(0, named=True)
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        51906.03, 52096.4, 51822.17, 52041.88,
    )
    assert first["volume"] == pytest.approx(412.50671093)
    assert frame["quote_volume"].null_count() == 6 and frame["trades"].null_count() == 6
    assert frame.row(1, named=True)["low"] == 51950.0  # sent as the integer 51950
    assert frame.row(5, named=True)["low"] == 51903.8
    assert (frame["high"] >= frame["low"]).all()


def test_parse_candles_single_row() -> None:
    frame = cb.parse_candles(load("candles_1h_BTC-USDT.json"))
    assert frame.row(0) == (1716213600 * 10**9, 66954.02, 67118.2, 66901.37, 67085.74,
                            2.31870452, None, None)


def test_parse_trades_maker_side_becomes_taker_side_and_same_microsecond_kept() -> None:
    frame = cb.parse_trades(load("trades_BTC-USD.json"))
    assert frame.schema == polars_schema(DataType.TRADES)
    assert frame["trade_id"].to_list() == [str(i) for i in range(871204550, 871204555)]
    assert frame["side"].unique().to_list() == ["sell"]  # maker "buy" -> taker sold
    last = frame.row(4, named=True)
    assert last["ts"] == 1741365729318604000  # 2025-03-07T16:42:09.318604Z, to the µs
    assert last["price"] == 88412.07 and last["amount"] == pytest.approx(0.00318)
    assert frame.filter(pl.col("ts") == last["ts"]).height == 3


def test_parse_trades_string_ids() -> None:
    frame = cb.parse_trades(load("trades_BTC-USDT_string_ids.json"))
    assert frame.row(0) == (1716279292093117000, "20917355", 67044.18, 0.00512, "buy")


def test_parse_book_best_first_and_sliced() -> None:
    frame = cb.parse_book(load("book_level2_BTC-USD.json"), 2, received_ts=1)
    assert frame.schema == polars_schema(DataType.BOOK)
    assert frame["ts"].unique().to_list() == [1704067200123456000]
    bids = frame.filter(pl.col("side") == "bid")
    assert bids["price"].to_list() == [42000.01, 41999.5]
    assert bids["level"].to_list() == [0, 1]
    assert frame.filter(pl.col("side") == "ask")["amount"].to_list() == [1.25, 2.0]


@pytest.mark.parametrize(
    "payload",
    [
        [{"trade_id": 1, "side": "up", "size": "1", "price": "1", "time": "2024-01-01T00:00:00Z"}],
        [{"trade_id": 1, "side": "buy", "size": "x", "price": "1", "time": "2024-01-01T00:00:00Z"}],
        [{"trade_id": 1, "side": "buy", "size": "1", "price": "1"}],
        [{"trade_id": 1, "side": "buy", "size": "1", "price": "1", "time": "yesterday"}],
        {"message": "oops", "x": 1, "y": 2},
    ],
)
def test_parse_trades_refuses_malformed(payload: object) -> None:
    with pytest.raises(UnexpectedPayload):
        cb.parse_trades(payload)


def test_parse_candles_refuses_short_rows() -> None:
    with pytest.raises(UnexpectedPayload):
        cb.parse_candles([[1704067200, 1.0, 2.0]])


def test_check_payload_error_body() -> None:
    with pytest.raises(ExchangeError, match="NotFound"):
        cb.check_payload({"message": "NotFound"})
    cb.check_payload([])  # a page is fine


def test_symbols_both_ways_with_aliases() -> None:
    assert native_symbol(BTC_USD) == "BTC-USD"
    assert native_symbol(Symbol("CELO", "USD")) == "CGLD-USD"
    assert unified_symbol("CGLD-USD") == Symbol("CELO", "USD")
    with pytest.raises(UnknownSymbol):
        native_symbol(Symbol.parse("BTC/USD:USD"))


# -- capability ---------------------------------------------------------------------


def test_capability_declares_the_real_api() -> None:
    ohlc = CAPABILITY.feature(DataType.OHLC)
    assert ohlc is not None and ohlc.page_limit == 300
    assert [s.label for s in ohlc.spans] == ["1m", "5m", "15m", "1h", "6h", "1d"]
    trades = CAPABILITY.feature(DataType.TRADES)
    assert trades is not None and trades.page_limit == 1000
    assert CAPABILITY.feature(DataType.OHLC, CAPABILITY.features[3].transport) is None


#: the source on a plain client (no limiter): the paging tests need no pacing
plain_source = client_source(CoinbaseSource, "coinbase", check_payload=cb.check_payload)


fake_and_source = fake_source_fixture(CoinbaseFake, plain_source)


async def test_unsupported_span_fails_before_any_request(
    fake_and_source: tuple[CoinbaseFake, CoinbaseSource],
) -> None:
    fake, source = fake_and_source
    with pytest.raises(NoCapability, match=r"1m 5m 15m 1h 6h 1d.*derive candles from trades"):
        await source.fetch_candles(BTC_USD, Span.parse("4h"), 0, 10 * 4 * H)
    with pytest.raises(NoCapability, match="derive candles from trades"):
        CAPABILITY.require(DataType.OHLC, span=Span.parse("30m"))
    assert fake.requests == []


# -- paging against the fake ----------------------------------------------------------


async def test_candles_backfill_over_many_pages_equals_truth(
    fake_and_source: tuple[CoinbaseFake, CoinbaseSource],
) -> None:
    fake, source = fake_and_source
    span = Span.parse("1m")
    start = 1704067200 * 10**9 + 7 * 60 * 10**9
    end = start + 1_000 * span.ns  # 4 windows of <= 300 bars
    chunks = [c.rows async for c in paginate_candles(source, BTC_USD, span, start, end)]
    got = pl.concat(chunks).sort("ts")
    assert got.equals(fake.truth_candles(BTC_USD, span, start, end))
    assert len([r for r in fake.requests if r[0].endswith("/candles")]) == 4


async def collect_trades(source: CoinbaseSource, start: int, end: int) -> pl.DataFrame:
    chunks = [c.rows async for c in paginate_trades(source, BTC_USD, start, end)]
    got = pl.concat(chunks)
    return got.with_columns(_id=pl.col("trade_id").cast(pl.Int64)).sort("ts", "_id").drop("_id")


async def test_trades_old_window_bisects_ids_and_keeps_bursts_across_pages(
    fake_and_source: tuple[CoinbaseFake, CoinbaseSource],
) -> None:
    fake, source = fake_and_source
    tape = fake.tapes["BTC-USD"]
    start, end = tape[200][1] * 1_000, tape[3_000][1] * 1_000
    got = await collect_trades(source, start, end)
    truth = fake.truth_trades(BTC_USD, start, end)
    assert got.height == truth.height > 2_800  # index 200 is inside a same-µs group
    assert got.equals(truth)
    # a 1200-trade burst in one microsecond is longer than a page: split, and whole
    assert got.filter(pl.col("ts") == tape[1_500][1] * 1_000).height == 1_200
    assert got.filter(pl.col("ts") == tape[995][1] * 1_000).height == 12
    pages = [q for p, q in fake.requests if p.endswith("/trades")]
    assert all("start" not in q for q in pages)  # Coinbase has no time parameter
    assert len(pages) < 25  # newest page + bisection + 3 pages


async def test_trades_latest_window_pages_back_from_newest(
    fake_and_source: tuple[CoinbaseFake, CoinbaseSource],
) -> None:
    fake, source = fake_and_source
    tape = fake.tapes["BTC-USD"]
    start, end = tape[3_100][1] * 1_000, fake.newest_ts + 1
    got = await collect_trades(source, start, end)
    assert got.equals(fake.truth_trades(BTC_USD, start, end))
    assert len([1 for p, _ in fake.requests if p.endswith("/trades")]) == 2


async def test_trades_window_before_first_trade_is_empty(
    fake_and_source: tuple[CoinbaseFake, CoinbaseSource],
) -> None:
    fake, source = fake_and_source
    t0 = fake.tapes["BTC-USD"][0][1] * 1_000
    got = await collect_trades(source, t0 - 10 * H, t0)
    assert got.height == 0


async def test_book_and_symbols(fake_and_source: tuple[CoinbaseFake, CoinbaseSource]) -> None:
    _, source = fake_and_source
    book = await source.fetch_book(BTC_USD, 20)
    assert book.height == 40 and book["level"].max() == 19
    symbols = await source.fetch_symbols()
    assert symbols == {BTC_USD, Symbol("ETH", "USD"), Symbol("CELO", "USD")}
    with pytest.raises(UnknownSymbol, match="BTC/USD"):
        await source.check_symbol(Symbol("BTC", "EUR"))


async def test_unknown_product_error_body_is_exchange_error(
    fake_and_source: tuple[CoinbaseFake, CoinbaseSource],
) -> None:
    _, source = fake_and_source
    with pytest.raises(ExchangeError, match="NotFound"):
        await source.fetch_book(Symbol("NOPE", "USD"), 10)


async def test_registry_builds_the_source_against_an_override() -> None:
    fake = CoinbaseFake()
    async with source_on("coinbase", fake.app()) as source:
        assert isinstance(source, CoinbaseSource)
        rows = await source.fetch_candles(BTC_USD, Span.parse("1h"), 1704067200 * 10**9,
                                          1704067200 * 10**9 + 6 * H)
        assert rows.height == fake.truth_candles(BTC_USD, Span.parse("1h"),
                                                 1704067200 * 10**9,
                                                 1704067200 * 10**9 + 6 * H).height
