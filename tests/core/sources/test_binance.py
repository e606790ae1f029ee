"""Binance source: parsers on documented payloads, routing, cursors, weights, symbols."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DataType, Span, Symbol, schema_for
from dccd_core.domain.errors import ExchangeError, NoCapability, UnexpectedPayload, UnknownSymbol
from dccd_core.sources.binance import CAPABILITY, BinanceSource
from dccd_core.sources.binance.parse import (
    check_payload,
    parse_book,
    parse_candles,
    parse_trades,
)
from dccd_core.sources.binance.rest import build_candles_request, build_trades_request
from dccd_core.sources.registry import build_source

FIXTURES = Path(__file__).parents[2] / "fixtures" / "binance"
SPOT = Symbol.parse("BTC/USDT")
PERP = Symbol.parse("BTC/USDT:USDT")


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _frame_schema(frame: pl.DataFrame, data_type: DataType) -> None:
    assert frame.to_arrow().schema.names == schema_for(data_type).names
    got = dict(zip(frame.columns, frame.dtypes, strict=True))
    expected = pl.from_arrow(schema_for(data_type).empty_table()).schema  # type: ignore[union-attr]
    assert got == dict(expected)


# -- parsers -----------------------------------------------------------------------


def test_parse_klines_open_time_strings_and_numbers() -> None:
    frame = parse_candles(_load("klines.json"))
    _frame_schema(frame, DataType.OHLC)
    assert frame.row(0) == (
        1499040000000 * NS_PER_MS,
        0.0163479,
        0.8,
        0.015758,
        0.015771,
        148976.11427815,
        2434.19055334,
        308,
    )
    assert frame.row(1)[4:] == (0.0159, 1000.0, 15.5, 42)  # numbers sent as numbers / strings


def test_parse_agg_trades_side_from_maker_flag() -> None:
    frame = parse_trades(_load("agg_trades.json"))
    _frame_schema(frame, DataType.TRADES)
    assert frame.get_column("trade_id").to_list() == ["26129", "26130"]
    assert frame.get_column("ts").to_list() == [1498793709153 * NS_PER_MS] * 2
    # m=true: the buyer was the maker, so the taker SOLD
    assert frame.get_column("side").to_list() == ["sell", "buy"]
    assert frame.get_column("price").to_list() == [0.01633102, 0.01633103]


@pytest.mark.parametrize(
    "payload",
    [
        {"code": 0},
        [[1499040000000, "x", "1", "1", "1", "1", 0, "1", 1]],
        [[1499040000000, "1"]],
        [{"a": 1, "p": "1", "q": "1", "T": 1}],  # no maker flag
        [{"a": 1, "p": "one", "q": "1", "T": 1, "m": True}],
    ],
)
def test_malformed_payloads_raise(payload: Any) -> None:
    with pytest.raises(UnexpectedPayload):
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            parse_trades(payload)
        else:
            parse_candles(payload)


def test_parse_depth_spot_and_futures_timestamps() -> None:
    spot = parse_book(_load("depth_spot.json"), 20, received_ts=123)
    _frame_schema(spot, DataType.BOOK)
    assert spot.select("side", "level", "price").rows() == [
        ("bid", 0, 4.0),
        ("bid", 1, 3.99),
        ("ask", 0, 4.000002),
        ("ask", 1, 4.1),
    ]
    assert set(spot.get_column("ts")) == {123}
    futures = parse_book(_load("depth_futures.json"), 5, received_ts=123)
    assert set(futures.get_column("ts")) == {1589436922959 * NS_PER_MS}


def test_check_payload_negative_code() -> None:
    check_payload([])
    check_payload({"code": 200, "msg": "ok"})
    with pytest.raises(ExchangeError, match=r"-1121: Invalid symbol\."):
        check_payload({"code": -1121, "msg": "Invalid symbol."})


# -- requests ----------------------------------------------------------------------


def test_klines_request_inclusive_ms_and_weight() -> None:
    path, params, weight = build_candles_request(
        SPOT, Span.parse("1m"), 60_000 * NS_PER_MS, (60_000 + 1000 * 60_000) * NS_PER_MS
    )
    assert path == "/api/v3/klines"
    assert params == {
        "symbol": "BTCUSDT",
        "interval": "1m",
        "startTime": "60000",
        "endTime": str(60_000 + 1000 * 60_000 - 1),
        "limit": "1000",
    }
    assert weight == 2
    path, params, weight = build_candles_request(
        PERP, Span.parse("1h"), 0, 10 * 3_600_000 * NS_PER_MS
    )
    assert (path, params["limit"], weight) == ("/fapi/v1/klines", "10", 1)


def test_agg_trades_time_window_is_below_one_hour() -> None:
    _, params, weight = build_trades_request(SPOT, 10**18, None, 5 * NS_PER_MS + 1)
    assert params["startTime"] == "6"  # rounded up: no trade before start_ts
    assert int(params["endTime"]) - int(params["startTime"]) == 3_600_000 - 1
    assert weight == 4
    _, params, weight = build_trades_request(PERP, 10**18, ("id", 42), 0)
    assert params == {"symbol": "BTCUSDT", "limit": "1000", "fromId": "42"} and weight == 20


def test_capability_declares_binance() -> None:
    assert len(CAPABILITY.feature(DataType.OHLC).spans) == 13  # type: ignore[union-attr]
    assert CAPABILITY.feature(DataType.TRADES).page_limit == 1000  # type: ignore[union-attr]
    assert CAPABILITY.feature(DataType.BOOK).book_depths == (  # type: ignore[union-attr]
        5,
        10,
        20,
        50,
        100,
        500,
        1000,
        5000,
    )
    from dccd_core.domain import Transport

    assert CAPABILITY.feature(DataType.TRADES, Transport.WS).channel == "aggTrade"  # type: ignore[union-attr]
    assert BinanceSource.sequential_trade_ids is True


# -- routing and symbols (MockTransport) -------------------------------------------


def _recording(responses: dict[str, Any]) -> tuple[list[httpx.URL], httpx.MockTransport]:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        body = responses[request.url.path]
        return httpx.Response(200, json=body, headers={"X-MBX-USED-WEIGHT-1M": "10"})

    return seen, httpx.MockTransport(handler)


async def test_spot_and_perp_go_to_their_hosts_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCCD_BINANCE_REST_URL", raising=False)
    seen, transport = _recording(
        {
            "/api/v3/klines": _load("klines.json"),
            "/fapi/v1/klines": _load("klines.json"),
            "/api/v3/exchangeInfo": _load("exchange_info_spot.json"),
            "/fapi/v1/exchangeInfo": _load("exchange_info_futures.json"),
        }
    )
    source = build_source("binance", transport=transport)
    try:
        await source.fetch_candles(SPOT, Span.parse("1w"), 0, 2 * 10**18)
        await source.fetch_candles(PERP, Span.parse("1w"), 0, 2 * 10**18)
        await source.check_symbol(SPOT)
        await source.check_symbol(PERP)
        symbols = await source.fetch_symbols()
    finally:
        await source.aclose()
    hosts = [(u.host, u.path) for u in seen]
    assert hosts[:2] == [
        ("api.binance.com", "/api/v3/klines"),
        ("fapi.binance.com", "/fapi/v1/klines"),
    ]
    assert symbols == {Symbol("ETH", "BTC"), SPOT, Symbol("LUNA", "USDT"), PERP}
    assert sum(1 for u in seen if u.path.endswith("exchangeInfo")) == 2  # cached


async def test_override_sends_both_markets_to_one_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCCD_BINANCE_REST_URL", "http://127.0.0.1:9")
    seen, transport = _recording(
        {"/api/v3/depth": _load("depth_spot.json"), "/fapi/v1/depth": _load("depth_futures.json")}
    )
    source = build_source("binance", transport=transport)
    try:
        await source.fetch_book(SPOT, 5)
        await source.fetch_book(PERP, 5)
        with pytest.raises(NoCapability, match="futures have no book depth 5000"):
            await source.fetch_book(PERP, 5000)
    finally:
        await source.aclose()
    assert {(u.host, u.port) for u in seen} == {("127.0.0.1", 9)}


async def test_unknown_symbol_and_coin_m() -> None:
    _, transport = _recording({"/api/v3/exchangeInfo": _load("exchange_info_spot.json")})
    source = build_source("binance", rest_url="http://fake.test", transport=transport)
    try:
        with pytest.raises(UnknownSymbol, match="does not list BTC/EUR; BTC markets: BTC/USDT"):
            await source.check_symbol(Symbol.parse("BTC/EUR"))
        with pytest.raises(NoCapability, match="COIN-M"):
            await source.check_symbol(Symbol.parse("BTC/USD:BTC"))
    finally:
        await source.aclose()


async def test_trade_cursor_semantics() -> None:
    """Full time page -> by id; short page -> next id or next hour; by-id page past the
    window end or short -> drained."""
    t0 = 1_704_067_200_000  # 2024-01-01 in ms: pages must carry plausible times
    rows = [{"a": 10 + i, "p": "1", "q": "1", "T": t0 + 5_000 + i, "m": False} for i in range(1000)]
    pages: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        key = "id" if "fromId" in q else "time"
        return httpx.Response(200, json=pages[key](q))

    source = build_source(
        "binance", rest_url="http://fake.test", transport=httpx.MockTransport(handler)
    )
    end = (t0 + 10**7) * NS_PER_MS
    try:
        pages["time"] = lambda q: rows
        page = await source.fetch_trades_page(SPOT, t0 * NS_PER_MS, end, None)
        assert page.next_cursor == ("id", 1010)
        pages["time"] = lambda q: rows[:3]
        page = await source.fetch_trades_page(SPOT, t0 * NS_PER_MS, end, None)
        assert page.next_cursor == ("id", 13)
        pages["time"] = lambda q: []
        page = await source.fetch_trades_page(SPOT, t0 * NS_PER_MS, end, ("time", t0 + 7))
        assert page.next_cursor == ("time", t0 + 7 + 3_600_000)  # a quiet hour ends nothing
        page = await source.fetch_trades_page(
            SPOT, t0 * NS_PER_MS, (t0 + 8) * NS_PER_MS, ("time", t0 + 7)
        )
        assert page.next_cursor is None  # the slice reached the window's end
        pages["id"] = lambda q: rows
        page = await source.fetch_trades_page(SPOT, t0 * NS_PER_MS, end, ("id", 10))
        assert page.next_cursor == ("id", 1010)
        page = await source.fetch_trades_page(
            SPOT, t0 * NS_PER_MS, (t0 + 5_500) * NS_PER_MS, ("id", 10)
        )
        assert page.next_cursor is None
        pages["id"] = lambda q: rows[:10]
        page = await source.fetch_trades_page(SPOT, t0 * NS_PER_MS, end, ("id", 10))
        assert page.next_cursor is None  # newest trade reached
    finally:
        await source.aclose()
