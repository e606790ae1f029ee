"""Bitfinex source: parsers on hand-written bodies, symbol map, and paging against the fake."""

from __future__ import annotations

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DataType, Span, Symbol, schema_for, to_ns
from dccd_core.domain.errors import (
    ExchangeError,
    NoCapability,
    RateLimited,
    RetryExhausted,
    SourceError,
    UnexpectedPayload,
    UnknownSymbol,
)
from dccd_core.sources.bitfinex import BitfinexSource
from dccd_core.sources.bitfinex import parse as bfx
from dccd_core.sources.bitfinex.symbols import from_native, to_native
from dccd_core.transport import RetryPolicy, TransientError
from dccd_core.transport.paginate import paginate_candles, paginate_trades
from tests.fakes.bitfinex import BitfinexFake
from tests.fakes.kit import client_source, fake_source_fixture, fixture_loader, source_built_on

BTC_USD = Symbol("BTC", "USD")
T0 = to_ns("2024-01-01T00:00:00Z")
load = fixture_loader("bitfinex")


# -- parsers on hand-written bodies (documented shapes, made-up values) ---------------


def test_parse_candles_page() -> None:
    frame = bfx.parse_candles(load("candles_1h_tBTCUSD.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.OHLC))
    assert frame.height == 5
    first = frame.row(0, named=True)
    # [MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]: close comes before high on the wire.
    assert first["ts"] == 1367838000000 * NS_PER_MS
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        112.4,
        113.05,
        112.3,
        112.917,
    )
    assert first["volume"] == pytest.approx(84.2107)
    assert frame.row(4) == (1367852400000 * NS_PER_MS, 114.0, 114.0, 113.1, 113.48001,
                            52.48813, None, None)  # integer prices on the wire
    assert frame["quote_volume"].null_count() == 5
    assert (frame["high"] >= frame["low"]).all()
    assert frame["ts"].diff().drop_nulls().unique().to_list() == [3_600 * 10**9]


def test_parse_candles_integer_prices() -> None:
    frame = bfx.parse_candles(load("candles_1h_tBTCUST.json"))
    assert frame.row(0) == (
        1552309200000 * NS_PER_MS,
        3893.2,
        3905.0,
        3893.2,
        3905.0,
        0.0217,
        None,
        None,
    )


def test_parse_trades_pages() -> None:
    frame = bfx.parse_trades(load("trades_tBTCUSD.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.TRADES))
    assert frame["trade_id"].to_list() == ["5210", "5211", "5214", "5222", "5223"]
    assert frame["ts"][0] == 1358849107000 * NS_PER_MS
    assert frame["amount"].to_list() == [1.5, 0.0431207, 12.0, 0.75, 30.0]
    assert frame["price"][:2].to_list() == [17.2190021, 17.2190021]
    assert frame["side"].unique().to_list() == ["buy"]
    one = bfx.parse_trades(load("trades_tBTCUST.json")).row(0, named=True)
    assert one == {
        "ts": 1716286492781 * NS_PER_MS,
        "trade_id": "1617209833",
        "price": 70452.0,
        "amount": 0.00731,
        "side": "buy",
    }


def test_parse_trades_negative_amount_is_taker_sell_and_strings_accepted() -> None:
    frame = bfx.parse_trades(
        [[1, "1716286492781", "-0.5", "70451.5"], [2, 1716286492781, 1, 70452]]
    )
    assert frame["side"].to_list() == ["sell", "buy"]
    assert frame["amount"].to_list() == [0.5, 1.0]
    assert frame["price"].to_list() == [70451.5, 70452.0]


@pytest.mark.parametrize(
    "payload",
    [
        {"a": 1},
        [[1, 2, 3]],
        [[1, 1716286492781, "abc", 1.0]],
        [[1, None, 1.0, 1.0]],
        [[1, 2, 0, 3]],
    ],
)
def test_parse_trades_rejects_malformed(payload: object) -> None:
    with pytest.raises(UnexpectedPayload):
        bfx.parse_trades(payload)


def test_parse_book_sides_and_levels() -> None:
    rows = [[100, 2, 1.5], [99.5, 1, 0.5], [101, 3, -2.0], [101.5, 1, -0.25]]
    frame = bfx.parse_book(rows, ts=42)
    assert frame.schema == pl.Schema(schema_for(DataType.BOOK))
    assert frame.rows() == [
        (42, "bid", 0, 100.0, 1.5),
        (42, "bid", 1, 99.5, 0.5),
        (42, "ask", 0, 101.0, 2.0),
        (42, "ask", 1, 101.5, 0.25),
    ]


def test_check_payload_error_bodies() -> None:
    bfx.check_payload([[1, 2, 3, 4]])
    with pytest.raises(ExchangeError, match=r"10020.*limit: invalid"):
        bfx.check_payload(["error", 10020, "limit: invalid"])
    with pytest.raises(RateLimited):
        bfx.check_payload({"error": "ERR_RATE_LIMIT"})
    with pytest.raises(TransientError, match="maintenance"):
        bfx.check_payload(["error", 20060, "maintenance"])


# -- symbols ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unified", "native"),
    [
        ("BTC/USD", "tBTCUSD"),
        ("ETH/USD", "tETHUSD"),
        ("BTC/USDT", "tBTCUST"),
        ("AVAX/USD", "tAVAX:USD"),
        ("DASH/USD", "tDSHUSD"),
        ("BTC/USDT:USDT", "tBTCF0:USTF0"),
    ],
)
def test_symbol_map_both_ways(unified: str, native: str) -> None:
    assert to_native(Symbol.parse(unified)) == native
    assert from_native(native) == Symbol.parse(unified)


def test_inverse_perp_is_unknown() -> None:
    with pytest.raises(UnknownSymbol, match="linear"):
        to_native(Symbol.parse("BTC/USD:BTC"))


# -- against the fake -----------------------------------------------------------------


def make_source(origin: str, attempts: int = 2) -> BitfinexSource:
    retry = RetryPolicy(attempts=attempts, base_s=0.01, max_s=0.02)
    check, errors = BitfinexSource.check_payload, BitfinexSource.errors
    return client_source(
        BitfinexSource, "bitfinex", check_payload=check, errors=errors, retry=retry
    )(origin)


fake_and_source = fake_source_fixture(
    lambda: BitfinexFake(first_ms=T0 // NS_PER_MS, last_ms=T0 // NS_PER_MS + 40 * 86_400_000),
    make_source,
)


async def collect_trades(source: BitfinexSource, start: int, end: int) -> pl.DataFrame:
    chunks = [c.rows async for c in paginate_trades(source, BTC_USD, start, end, concurrency=2)]
    return pl.concat(chunks).sort("ts", "trade_id")


def sort_truth(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("ts", "trade_id")


async def test_trades_backfill_equals_truth_with_burst_across_page_boundary() -> None:
    start, end = T0, T0 + 3 * 3_600 * 10**9
    plain = BitfinexFake(first_ms=T0 // NS_PER_MS, last_ms=end // NS_PER_MS)
    # Put 3,000 trades in the millisecond where the first 10,000-trade page ends.
    boundary_ms = int(plain.truth_trades(BTC_USD, start, end)["ts"][9_990]) // NS_PER_MS
    fake = BitfinexFake(first_ms=plain.first_ms, last_ms=plain.last_ms, bursts={boundary_ms: 3_000})
    truth = fake.truth_trades(BTC_USD, start, end)
    assert truth.height > 3 * 10_000
    at_boundary = truth.filter(pl.col("ts") == boundary_ms * NS_PER_MS).height
    assert at_boundary > 3_000
    async with source_built_on(fake.app(), make_source) as source:
        got = await collect_trades(source, start, end)
    assert got.schema == pl.Schema(schema_for(DataType.TRADES))
    assert got.height == truth.height
    assert got.equals(sort_truth(truth))
    # The cursor is the last page's newest ms, inclusive: never "+1 ms".
    starts = [q for q in fake.requests if "/trades/" in q]
    assert any(f"start={boundary_ms}&" in q for q in starts)


async def test_trades_more_than_a_page_in_one_millisecond() -> None:
    first = T0 // NS_PER_MS
    burst_ms = first + 60_500
    fake = BitfinexFake(first_ms=first, last_ms=first + 180_000, bursts={burst_ms: 12_000})
    start, end = T0, T0 + 180_000 * NS_PER_MS
    truth = fake.truth_trades(BTC_USD, start, end)
    async with source_built_on(fake.app(), make_source) as source:
        got = await collect_trades(source, start, end)
    assert got.equals(sort_truth(truth))
    assert any("sort=-1" in q and f"start={burst_ms}&end={burst_ms}" in q for q in fake.requests)


async def test_trades_beyond_two_pages_in_one_millisecond_is_a_clear_error() -> None:
    first = T0 // NS_PER_MS
    fake = BitfinexFake(first_ms=first, last_ms=first + 10_000, bursts={first + 5_000: 20_500})
    async with source_built_on(fake.app(), make_source) as source:
        with pytest.raises(SourceError, match=r"more than 20000 .* trades in the one millisecond"):
            await collect_trades(source, T0, T0 + 10_000 * NS_PER_MS)


async def test_candles_backfill_equals_truth(
    fake_and_source: tuple[BitfinexFake, BitfinexSource],
) -> None:
    fake, source = fake_and_source
    span = Span.parse("1m")
    start, end = T0, T0 + 25_000 * span.ns  # 3 pages of 10,000
    chunks = [c.rows async for c in paginate_candles(source, BTC_USD, span, start, end)]
    got = pl.concat(chunks).sort("ts")
    truth = fake.truth_candles(BTC_USD, span, start, end)
    assert truth.height > 20_000
    assert got.equals(truth)
    assert len([q for q in fake.requests if "/candles/" in q]) == 3


async def test_no_capability_before_any_request(
    fake_and_source: tuple[BitfinexFake, BitfinexSource],
) -> None:
    fake, source = fake_and_source
    with pytest.raises(NoCapability, match="derive candles from trades"):
        await source.fetch_candles(BTC_USD, Span.parse("4h"), T0, T0 + 10 * 4 * 3_600 * 10**9)
    with pytest.raises(NoCapability, match="use depth 25"):
        await source.fetch_book(BTC_USD, 20)
    assert fake.requests == []


async def test_book_and_symbols(fake_and_source: tuple[BitfinexFake, BitfinexSource]) -> None:
    _, source = fake_and_source
    book = await source.fetch_book(BTC_USD, 25)
    assert book.height == 50
    bids, asks = book.filter(pl.col("side") == "bid"), book.filter(pl.col("side") == "ask")
    assert bids["price"][0] == 30_000.0 and asks["price"][0] == 30_000.5
    assert bids["level"].to_list() == list(range(25))
    assert (bids["price"].diff().drop_nulls() < 0).all()
    assert (asks["amount"] > 0).all()
    symbols = await source.fetch_symbols()
    assert symbols is not None
    assert {Symbol.parse("BTC/USDT"), Symbol.parse("BTC/USDT:USDT"), BTC_USD} <= symbols
    with pytest.raises(UnknownSymbol):
        await source.check_symbol(Symbol.parse("BTC/EUR"))


async def test_error_body_in_http_500_is_exchange_error(
    fake_and_source: tuple[BitfinexFake, BitfinexSource],
) -> None:
    fake, source = fake_and_source
    with pytest.raises(ExchangeError, match="limit: invalid"):
        await source.http.get("/v2/trades/tBTCUSD/hist", {"limit": 20_000})
    with pytest.raises(ExchangeError, match="symbol: invalid"):
        await source.fetch_trades_page(Symbol.parse("BTC/EUR"), T0, T0 + 10**9, None)
    assert len(fake.requests) == 2  # not retried as a transient 5xx


async def test_maintenance_in_http_500_is_retried() -> None:
    """20060 is transient, unlike other error bodies in a 500 (not retried, above)."""
    first = T0 // NS_PER_MS
    fake = BitfinexFake(first_ms=first, last_ms=first + 60_000, maintenance=2)
    async with source_built_on(fake.app(), lambda origin: make_source(origin, 4)) as source:
        http = source.http
        page = await source.fetch_trades_page(BTC_USD, T0, T0 + 60_000 * NS_PER_MS, None)
        assert page.rows.equals(fake.truth_trades(BTC_USD, T0, T0 + 60_000 * NS_PER_MS))
        assert len(fake.requests) == 3 and http.stats.retries == 2
        fake.maintenance = 10  # longer than the budget: a clear, final error
        with pytest.raises(RetryExhausted, match="maintenance"):
            await source.fetch_candles(BTC_USD, Span.parse("1m"), T0, T0 + 60 * 10**9)
