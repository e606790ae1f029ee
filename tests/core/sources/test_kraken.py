"""Kraken source: parsers on hand-written bodies, symbols, 720-bar limit, paging on the fake."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import DataType, Span, Symbol, now_ns
from dccd_core.domain.errors import (
    ExchangeError,
    NoCapability,
    RateLimited,
    UnexpectedPayload,
    UnknownSymbol,
)
from dccd_core.sources.kraken import CAPABILITY, KrakenSource
from dccd_core.sources.kraken import parse as kr
from dccd_core.sources.kraken.symbols import native_symbol, parse_symbols, unified_symbol
from dccd_core.transport.paginate import paginate_candles, paginate_trades
from tests.fakes.kit import FIXTURES as KIT_FIXTURES
from tests.fakes.kit import (
    client_source,
    fake_source_fixture,
    fixture_loader,
    polars_schema,
    source_built_on,
)
from tests.fakes.kraken import KrakenFake
from tests.fakes.server import routes_app

FIXTURES = KIT_FIXTURES / "kraken"
BTC_USD = Symbol("BTC", "USD")
S = 10**9


load = fixture_loader("kraken")


# -- parsers on hand-written bodies (documented shapes, made-up values) ----------------


def test_parse_ohlc_drops_the_open_bar_and_keys_by_internal_name() -> None:
    frame = kr.parse_candles(load("ohlc_60_XBTUSDT.json"))
    assert frame.schema == polars_schema(DataType.OHLC)
    # six rows sent; the last (1715785200) is after ``last`` (a string, 1715781600): still open
    assert frame.height == 5
    assert frame["ts"].max() < 1715781600 * S + 1
    assert frame["ts"].to_list() == [1715673600 * S + i * 3_600 * S for i in range(5)]
    first = frame.row(0, named=True)
    assert first["ts"] == 1715673600 * S
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        61842.3, 61990.8, 61705.1, 61957.4,
    )
    assert first["volume"] == pytest.approx(9.41672305)
    assert first["quote_volume"] == pytest.approx(61861.2 * 9.41672305)  # vwap x volume
    assert first["trades"] == 118
    assert frame["trades"].to_list() == [118, 163, 241, 97, 74]


def test_parse_trades_float_seconds_and_ns_cursor() -> None:
    body = load("trades_XBTUSDT.json")
    frame, last = kr.parse_trades(body)
    assert last == 1715691135041770411  # ``last`` is a ns id sent as a string
    assert frame.rows() == [
        # float seconds rounded to the microsecond: 1715691134.5829418 -> ...582942000
        (1715691134582942000, "7015882", 61722.9, 0.00415, "sell"),
        (1715691135041770000, "7015883", 61723.0, 0.02891446, "buy"),
        (1715691135041770000, "7015884", 61723.0, 0.0006, "buy"),
    ]
    # a trailing field Kraken may add later (ccxt appends ``last`` in place) is ignored
    assert isinstance(body, dict)
    body["result"]["XBTUSDT"][-1].append(body["result"]["last"])
    assert kr.parse_trades(body)[0].equals(frame)


def test_parse_trades_documented_example_sides() -> None:
    frame, _ = kr.parse_trades(load("trades_XBTUSD_doc.json"))
    assert frame["side"].to_list() == ["buy", "sell", "sell"]
    assert frame["trade_id"].to_list() == ["61044952", "61044953", "61044956"]
    assert frame["ts"].to_list()[2] == 1688669602698379000


def test_parse_trades_without_ids_derives_deterministic_ids() -> None:
    body = load("trades_XBTUSD_doc.json")
    assert isinstance(body, dict)
    rows = body["result"]["XXBTZUSD"]
    rows = [r[:6] for r in rows] + [r[:6] for r in rows[:1]]  # a same-ts twin
    body["result"]["XXBTZUSD"] = rows
    frame, _ = kr.parse_trades(body)
    ids = frame["trade_id"].to_list()
    assert len(set(ids)) == 4
    assert ids[0] == "1688669597827737000-0-b-30243.40000-0.34507674"
    assert ids[3] == "1688669597827737000-1-b-30243.40000-0.34507674"
    again, _ = kr.parse_trades(body)
    assert again["trade_id"].to_list() == ids


def test_parse_book_sorted_and_sliced() -> None:
    frame = kr.parse_book(load("depth_XBTUSD.json"), 2, received_ts=7)
    assert frame.schema == polars_schema(DataType.BOOK)
    assert frame.filter(pl.col("side") == "bid")["price"].to_list() == [30297.0, 30296.7]
    assert frame.filter(pl.col("side") == "ask")["amount"].to_list() == [2.059, 1.5]
    assert frame["ts"].unique().to_list() == [7]


def test_errors_inside_200_bodies() -> None:
    with pytest.raises(UnknownSymbol, match="Unknown asset pair"):
        kr.check_payload({"error": ["EQuery:Unknown asset pair"], "result": {}})
    with pytest.raises(RateLimited):
        kr.check_payload({"error": ["EAPI:Rate limit exceeded"]})
    with pytest.raises(ExchangeError, match="Invalid arguments"):
        kr.check_payload({"error": ["EGeneral:Invalid arguments"]})
    kr.check_payload({"error": [], "result": {}})


@pytest.mark.parametrize(
    "payload",
    [
        {"error": [], "result": {"XXBTZUSD": [["1", "2", 1.5, "x", "m", "", 1]], "last": "1"}},
        {"error": [], "result": {"XXBTZUSD": [["abc", "2", 1.5, "b", "m", "", 1]], "last": "1"}},
        {"error": [], "result": {"A": [], "B": [], "last": "1"}},
        {"error": []},
    ],
)
def test_parse_trades_refuses_malformed(payload: object) -> None:
    with pytest.raises(UnexpectedPayload):
        kr.parse_trades(payload)


def test_symbols_xbt_xdg_and_asset_pairs() -> None:
    assert native_symbol(BTC_USD) == "XBTUSD"
    assert native_symbol(Symbol("DOGE", "USD")) == "XDGUSD"
    assert native_symbol(Symbol("ETH", "EUR")) == "ETHEUR"
    assert unified_symbol("XBT/USDT") == Symbol("BTC", "USDT")
    assert unified_symbol("XDG/USD") == Symbol("DOGE", "USD")
    pairs = parse_symbols(load("asset_pairs.json"))
    assert pairs == {
        BTC_USD: "XBTUSD",
        Symbol("DOGE", "USD"): "XDGUSD",
        Symbol("ETH", "EUR"): "ETHEUR",
        Symbol("BTC", "USDT"): "XBTUSDT",
    }


# -- capability ---------------------------------------------------------------------


def test_capability_720_bars_and_spans() -> None:
    ohlc = CAPABILITY.feature(DataType.OHLC)
    assert ohlc is not None and ohlc.history_bars == 720
    assert [s.label for s in ohlc.spans] == ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]


#: the source on a plain client (no limiter): the paging tests need no pacing
plain_source = client_source(KrakenSource, "kraken", check_payload=kr.check_payload)


fake_and_source = fake_source_fixture(KrakenFake, plain_source)


async def test_old_candles_fail_before_any_request_naming_the_alternative(
    fake_and_source: tuple[KrakenFake, KrakenSource],
) -> None:
    fake, source = fake_and_source
    span = Span.parse("1m")
    old = span.floor(now_ns()) - 2_000 * span.ns
    with pytest.raises(NoCapability, match=r"last 720 .*derive candles from trades"):
        await source.fetch_candles(BTC_USD, span, old, old + 100 * span.ns)
    with pytest.raises(NoCapability, match=r"1m 5m 15m 30m 1h 4h 1d.*derive candles"):
        await source.fetch_candles(BTC_USD, Span.parse("1w"), old, old + span.ns)
    assert fake.requests == []


# -- paging against the fake ----------------------------------------------------------


async def test_candles_within_the_720_bars_equal_truth_without_the_open_bar(
    fake_and_source: tuple[KrakenFake, KrakenSource],
) -> None:
    fake, source = fake_and_source
    span = Span.parse("5m")
    open_bar = fake.open_bar_s(span) * S
    start, end = open_bar - 700 * span.ns, open_bar + span.ns
    chunks = [c.rows async for c in paginate_candles(source, BTC_USD, span, start, end)]
    got = pl.concat(chunks).sort("ts")
    truth = fake.truth_candles(BTC_USD, span, start, end)
    assert got.height == truth.height > 600
    assert got.drop("quote_volume").equals(truth.drop("quote_volume"))
    assert (got["quote_volume"] - truth["quote_volume"]).abs().max() < 1e-6  # type: ignore[operator]
    assert open_bar not in got["ts"].to_list()


async def collect_trades(source: KrakenSource, start: int, end: int) -> pl.DataFrame:
    chunks = [c.rows async for c in paginate_trades(source, BTC_USD, start, end)]
    return pl.concat(chunks).sort("ts", "trade_id")


def sort_truth(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("ts", "trade_id")


async def test_trades_backfill_keeps_same_microsecond_bursts_at_page_boundaries(
    fake_and_source: tuple[KrakenFake, KrakenSource],
) -> None:
    fake, source = fake_and_source
    tape = fake.tapes["XXBTZUSD"]
    start, end = tape[0][1] * 1_000, tape[3_300][1] * 1_000
    got = await collect_trades(source, start, end)
    truth = sort_truth(fake.truth_trades(BTC_USD, start, end))
    assert got.height == truth.height == 3_300
    assert got.equals(truth)
    for index, size in fake.bursts:
        assert got.filter(pl.col("ts") == tape[index][1] * 1_000).height == size
    pages = [q for p, q in fake.requests if p.endswith("/Trades")]
    assert 4 <= len(pages) <= 5


async def test_legacy_trades_without_ids_are_complete_and_unique() -> None:
    fake = KrakenFake(legacy=True)
    async with source_built_on(fake.app(), plain_source) as source:
        tape = fake.tapes["XXBTZUSD"]
        start, end = tape[500][1] * 1_000, tape[2_500][1] * 1_000
        got = await collect_trades(source, start, end)
    truth = fake.truth_trades(BTC_USD, start, end)
    assert got.height == truth.height
    assert got["trade_id"].n_unique() == got.height
    assert got.sort("ts", "price", "amount").drop("trade_id").equals(
        truth.sort("ts", "price", "amount").drop("trade_id")
    )


async def test_unknown_pair_in_a_200_body(
    fake_and_source: tuple[KrakenFake, KrakenSource],
) -> None:
    _, source = fake_and_source
    with pytest.raises(UnknownSymbol, match="Unknown asset pair"):
        await source.fetch_book(Symbol("NOPE", "USD"), 10)


async def test_book_symbols_and_depth_limit(
    fake_and_source: tuple[KrakenFake, KrakenSource],
) -> None:
    fake, source = fake_and_source
    book = await source.fetch_book(BTC_USD, 25)
    assert book.height == 50 and book["level"].max() == 24
    assert await source.fetch_symbols() == {BTC_USD, Symbol("ETH", "USD"), Symbol("DOGE", "USD")}
    n = len(fake.requests)
    with pytest.raises(NoCapability, match="use depth 500"):
        await source.fetch_book(BTC_USD, 1_000)
    assert len(fake.requests) == n


# -- 100 ns trade times: every digit kept ---------------------------------------------


def test_trade_times_keep_their_100_ns_digits() -> None:
    # the raw body: times are JSON numbers with 7 decimals, finer than a float keeps
    raw = (FIXTURES / "trades_XBTUSDT.json").read_bytes()
    frame, _ = kr.parse_trades(kr.decode_exact(raw))
    assert frame["ts"].to_list() == [1715691134582941800, 1715691135041770200, 1715691135041770200]
    assert kr.exact_seconds_to_ns("t", ["1688669597.8277369", "12", 3], "x").to_list() == [
        1688669597827736900,
        12 * S,
        3 * S,
    ]
    for bad in ("1.5e9", "-1.5", "1.1234567891", True, None):
        with pytest.raises(UnexpectedPayload, match="'t' holds"):
            kr.exact_seconds_to_ns("t", [bad], "x")
    with pytest.raises(json.JSONDecodeError):
        kr.decode_exact(b'{"error": [], "result": {"XBTUSDT": [["1", "2", 1688669597.82')
    with pytest.raises(json.JSONDecodeError):
        kr.decode_exact(b'{"error": [\xff]}')


async def test_a_backfill_stores_the_exact_100_ns_time_kraken_sent(tmp_path: Path) -> None:
    """A Kraken answering ``1715691134.5829418``: the store holds ...582941800, not the
    microsecond-rounded ...582942000 a float decode gives."""
    from aiohttp import web

    from dccd_core.domain import DatasetKey, to_ns
    from dccd_core.operations.backfill import backfill
    from dccd_core.storage import Store

    trades = (
        b'{"error": [], "result": {"XXBTZUSD": ['
        b'["61722.90000", "0.00415000", 1715691134.5829418, "s", "l", "", 7015882],'
        b'["61723.00000", "0.02891446", 1715691135.0417703, "b", "m", "", 7015883],'
        b'["61723.00000", "0.00060000", 1715691135.0417704, "b", "m", "", 7015884]'
        b'], "last": "1715691135041770400"}}'
    )
    pairs = (FIXTURES / "asset_pairs.json").read_bytes()

    async def answer(request: web.Request) -> web.Response:
        body = trades if request.path.endswith("/Trades") else pairs
        return web.Response(body=body, content_type="application/json")

    app = routes_app({"/0/public/Trades": answer, "/0/public/AssetPairs": answer})
    key = DatasetKey.of("kraken", "BTC/USD", "trades")
    store = Store(tmp_path)
    async with source_built_on(app, plain_source) as source:
        await backfill(
            key,
            start=to_ns("2024-05-14T12:52:00Z"),
            end=to_ns("2024-05-14T12:53:00Z"),
            store=store,
            source=source,
        )
    stored = store.read(key)
    assert stored["ts"].to_list() == [
        1715691134582941800,
        1715691135041770300,
        1715691135041770400,
    ]
    assert stored["trade_id"].to_list() == ["7015882", "7015883", "7015884"]
