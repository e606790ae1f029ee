"""BitMEX source: parsers on hand-written bodies, symbol map, and paging against the fake."""

from __future__ import annotations

from urllib.parse import unquote

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DataType, Span, Symbol, schema_for, to_ns
from dccd_core.domain.errors import ExchangeError, NoCapability, UnexpectedPayload, UnknownSymbol
from dccd_core.sources.bitmex import BitmexSource
from dccd_core.sources.bitmex import parse as mex
from dccd_core.sources.bitmex.rest import USED_HEADER, iso_ms
from dccd_core.sources.bitmex.symbols import from_native, to_native
from dccd_core.transport import RetryPolicy, WeightLimiter
from dccd_core.transport.paginate import paginate_candles, paginate_trades
from tests.fakes.bitmex import BitmexFake
from tests.fakes.kit import client_source, fake_source_fixture, fixture_loader, source_built_on

XBTUSD = Symbol.parse("BTC/USD:BTC")
T0 = to_ns("2024-01-01T00:00:00Z")
HOUR = Span.parse("1h")

load = fixture_loader("bitmex")


# -- parsers on hand-written bodies (documented shapes, made-up values) ---------------


def test_parse_candles_page_shifts_close_stamp_to_open() -> None:
    frame = mex.parse_candles(load("bucketed_1h_XBTUSD.json"), HOUR)
    assert frame.schema == pl.Schema(schema_for(DataType.OHLC))
    # The row labelled 2024-04-22T00:00 is the 2024-04-21 23:00-00:00 bar.
    assert frame["ts"][0] == to_ns("2024-04-21T23:00:00Z")
    assert frame.row(0) == (
        to_ns("2024-04-21T23:00:00Z"),
        64733.0,
        64911.5,
        64602.0,
        64870.5,
        145.34051538,
        9412300.0,
        2841,
    )
    assert frame["ts"].diff().drop_nulls().unique().to_list() == [HOUR.ns]
    assert frame["open"][1:].to_list() == frame["close"][:-1].to_list()  # open = prev close


def test_parse_candles_stringified_newest_first_open_outside_range() -> None:
    frame = mex.parse_candles(load("bucketed_1h_XBT_USDT_reverse.json"), HOUR)
    assert frame["ts"].to_list() == [to_ns("2024-06-03T07:00:00Z"), to_ns("2024-06-03T08:00:00Z")]
    last = frame.row(1, named=True)
    assert last["open"] == 66120.5 and last["high"] == 65872.0  # stored as sent
    assert last["volume"] == pytest.approx(0.0005) and last["trades"] == 2
    assert last["quote_volume"] == pytest.approx(32.9297)


def test_parse_trades_pages() -> None:
    frame = mex.parse_trades(load("trades_XBTUSD.json"))
    assert frame.schema == pl.Schema(schema_for(DataType.TRADES))
    assert frame["ts"].to_list()[-2:] == [to_ns("2024-04-22T00:00:03.316Z")] * 2
    assert frame["trade_id"][0] == "00000000-006d-1000-0000-0004b7e10a52"
    assert frame["side"].to_list() == ["buy", "buy", "sell", "sell", "buy"]
    assert frame["amount"].to_list() == [0.09711576, 0.00308304, 0.02774754, 0.00154153, 0.07245144]
    assert frame["price"].to_list() == [64871.0, 64871.0, 64870.5, 64870.5, 64871.0]
    one = mex.parse_trades(load("trades_XBT_USDT.json")).row(0, named=True)
    assert one == {
        "ts": 1717407687905 * NS_PER_MS,
        "trade_id": "00000000-006d-1000-0000-00061a3c95d0",
        "price": 66412.5,
        "amount": 0.0123,
        "side": "buy",
    }


def test_parse_trades_without_home_notional_converts_contracts() -> None:
    row = {
        "timestamp": "2024-01-01T00:00:02.618Z",
        "side": "Buy",
        "size": 100,
        "price": 40000.0,
        "trdMatchID": "x",
    }
    inverse = mex.parse_trades([row], mex.ContractSpec(inverse=True))
    assert inverse["amount"].to_list() == [0.0025]
    linear = mex.parse_trades([row], mex.ContractSpec(multiplier=1_000_000))
    assert linear["amount"].to_list() == pytest.approx([0.0001])
    with pytest.raises(NoCapability, match="quanto"):
        mex.parse_trades([row], mex.ContractSpec())


@pytest.mark.parametrize(
    "payload",
    [
        {"a": 1},
        [
            {
                "timestamp": "2024-01-01 00:00",
                "side": "Buy",
                "size": 1,
                "price": 1,
                "trdMatchID": "a",
                "homeNotional": 1,
            }
        ],
        [
            {
                "timestamp": "2024-01-01T00:00:00.000Z",
                "side": "Up",
                "size": 1,
                "price": 1,
                "trdMatchID": "a",
                "homeNotional": 1,
            }
        ],
        [
            {
                "timestamp": "2024-01-01T00:00:00.000Z",
                "side": "Buy",
                "price": "x",
                "trdMatchID": "a",
                "homeNotional": 1,
            }
        ],
    ],
)
def test_parse_trades_rejects_malformed(payload: object) -> None:
    with pytest.raises(UnexpectedPayload):
        mex.parse_trades(payload)


def test_check_payload_error_body() -> None:
    mex.check_payload([])
    with pytest.raises(ExchangeError, match="Invalid symbol"):
        mex.check_payload({"error": {"message": "Invalid symbol", "name": "HTTPError"}})


@pytest.mark.parametrize(
    ("unified", "native"),
    [
        ("BTC/USD:BTC", "XBTUSD"),
        ("ETH/USD:BTC", "ETHUSD"),
        ("BTC/USDT:USDT", "XBTUSDT"),
        ("ETH/USDT:USDT", "ETHUSDT"),
        ("BTC/USDT", "XBT_USDT"),
    ],
)
def test_symbol_map_both_ways(unified: str, native: str) -> None:
    assert to_native(Symbol.parse(unified)) == native
    assert from_native(native) == Symbol.parse(unified)


def test_symbol_with_wrong_settle_is_unknown() -> None:
    with pytest.raises(UnknownSymbol, match="BTC/USD:BTC"):
        to_native(Symbol.parse("BTC/USD:USD"))


# -- against the fake -----------------------------------------------------------------


def make_source(origin: str, limiter: WeightLimiter | None = None) -> BitmexSource:
    retry = RetryPolicy(attempts=2, base_s=0.01, max_s=0.02)
    check, errors = BitmexSource.check_payload, BitmexSource.errors
    return client_source(
        BitmexSource, "bitmex", limiter=limiter, check_payload=check, errors=errors, retry=retry
    )(origin)


fake_and_source = fake_source_fixture(
    lambda: BitmexFake(first_ms=T0 // NS_PER_MS, last_ms=T0 // NS_PER_MS + 200 * 86_400_000),
    make_source,
)


async def collect_trades(source: BitmexSource, start: int, end: int) -> pl.DataFrame:
    chunks = [c.rows async for c in paginate_trades(source, XBTUSD, start, end, concurrency=2)]
    return pl.concat(chunks)


async def test_trades_backfill_equals_truth_with_same_ms_at_page_boundaries() -> None:
    start, end = T0, T0 + 20 * 60 * 10**9
    plain = BitmexFake(first_ms=T0 // NS_PER_MS, last_ms=end // NS_PER_MS)
    truth0 = plain.truth_trades(XBTUSD, start, end)
    # 40 trades in the ms where the 2nd page ends; 2,500 (> 2 pages) in a later one.
    edge_ms = int(truth0["ts"][1_990]) // NS_PER_MS
    big_ms = int(truth0["ts"][4_500]) // NS_PER_MS
    fake = BitmexFake(
        first_ms=plain.first_ms, last_ms=plain.last_ms, bursts={edge_ms: 40, big_ms: 2_500}
    )
    truth = fake.truth_trades(XBTUSD, start, end)
    assert truth.height > 5 * 1_000
    async with source_built_on(fake.app(), make_source) as source:
        got = await collect_trades(source, start, end)
    assert got.schema == pl.Schema(schema_for(DataType.TRADES))
    assert got.height == truth.height
    assert got.sort("ts", "trade_id").equals(truth.sort("ts", "trade_id"))
    # Paging restarted inside the busy millisecond with a row offset, never at +1 ms.
    sent = [unquote(q) for q in fake.requests if q.startswith("/api/v1/trade?")]
    inside = [q for q in sent if f"startTime={iso_ms(big_ms)}" in q]
    offsets = [int(q.split("&start=")[1].split("&")[0]) for q in inside]
    assert len(offsets) >= 3 and offsets == sorted(offsets) and offsets[1] - offsets[0] == 1_000


async def test_trades_without_home_notional() -> None:
    fake = BitmexFake(
        first_ms=T0 // NS_PER_MS, last_ms=T0 // NS_PER_MS + 60_000, drop_home_notional=True
    )
    async with source_built_on(fake.app(), make_source) as source:
        got = await collect_trades(source, T0, T0 + 60 * 10**9)
    truth = fake.truth_trades(XBTUSD, T0, T0 + 60 * 10**9)
    assert got["amount"].to_list() == pytest.approx(truth["amount"].to_list())
    assert any("instrument" in q for q in fake.requests)


async def test_candles_backfill_equals_truth_open_stamped(
    fake_and_source: tuple[BitmexFake, BitmexSource],
) -> None:
    fake, source = fake_and_source
    start, end = T0 + 5 * HOUR.ns, T0 + 2_500 * HOUR.ns  # 3 pages of 1,000
    got = pl.concat(
        [c.rows async for c in paginate_candles(source, XBTUSD, HOUR, start, end)]
    ).sort("ts")
    truth = fake.truth_candles(XBTUSD, HOUR, start, end)
    assert truth.height == 2_495
    assert got["ts"][0] == start and got["ts"][-1] == end - HOUR.ns
    assert got.equals(truth)
    outside = got.filter((pl.col("open") > pl.col("high")) | (pl.col("open") < pl.col("low")))
    assert outside.height > 0  # BitMEX's open = previous close, kept as sent
    assert len([q for q in fake.requests if "bucketed" in q]) == 3


async def test_no_capability_before_any_request(
    fake_and_source: tuple[BitmexFake, BitmexSource],
) -> None:
    fake, source = fake_and_source
    with pytest.raises(NoCapability, match=r"1m 5m 1h 1d.*derive candles from trades"):
        await source.fetch_candles(XBTUSD, Span.parse("15m"), T0, T0 + 10 * 900 * 10**9)
    assert fake.requests == []


async def test_book_symbols_and_errors(fake_and_source: tuple[BitmexFake, BitmexSource]) -> None:
    fake, source = fake_and_source
    book = await source.fetch_book(XBTUSD, 10)
    bids, asks = book.filter(pl.col("side") == "bid"), book.filter(pl.col("side") == "ask")
    assert bids["price"].to_list()[:2] == [42_000.0, 41_999.5]
    assert asks["price"].to_list()[:2] == [42_000.5, 42_001.0]
    assert asks["level"].to_list() == list(range(10))
    sizes = {r["price"]: r["size"] for r in fake.book("XBTUSD", 10)}
    assert asks["amount"][0] == pytest.approx(sizes[42_000.5] / 42_000.5)  # USD -> XBT
    linear = await source.fetch_book(Symbol.parse("BTC/USDT:USDT"), 5)
    sizes = {r["price"]: r["size"] for r in fake.book("XBTUSDT", 5)}
    assert linear["amount"][0] == pytest.approx(sizes[42_000.0] / 1e6)
    symbols = await source.fetch_symbols()
    assert symbols == {
        XBTUSD,
        Symbol.parse("ETH/USD:BTC"),
        Symbol.parse("BTC/USDT:USDT"),
        Symbol.parse("BTC/USDT"),
    }
    with pytest.raises(ExchangeError, match="Unknown symbol"):
        await source.fetch_trades_page(Symbol.parse("DOGE/USDT:USDT"), T0, T0 + 10**9, None)


async def test_rate_limit_headers_feed_the_limiter() -> None:
    fake = BitmexFake(first_ms=T0 // NS_PER_MS, last_ms=T0 // NS_PER_MS + 60_000)
    limiter = WeightLimiter(120, usage_header=USED_HEADER)
    async with source_built_on(fake.app(), lambda origin: make_source(origin, limiter)) as source:
        await source.fetch_trades_page(XBTUSD, T0, T0 + 10**9, None)
        await source.fetch_trades_page(XBTUSD, T0, T0 + 10**9, None)
    assert limiter.last_used_weight == 2
