"""Kraken WS v2 hooks: documented checksum example, frames -> events, subscriptions."""

from __future__ import annotations

import json

import polars as pl
import pytest

from dccd_core.domain import DataType, ExchangeError, NoCapability, Span, Symbol, UnexpectedPayload
from dccd_core.sources.base import Endpoints
from dccd_core.sources.kraken import KrakenSource
from dccd_core.sources.kraken.checksum import book_checksum, checksum_text
from dccd_core.sources.ws import WsBook, WsCandles, WsIgnore, WsSubscription, WsTrades

BTC_USD = Symbol("BTC", "USD")

# The book of Kraken's checksum guide (v1 page; v2 uses the same algorithm): ten asks
# 0.05005..0.05050 and ten bids 0.05000..0.04950, every level 0.00000500 -> 974947235.
DOC_ASKS = [(f"0.0{5005 + 5 * i}", "0.00000500") for i in range(10)]
DOC_BIDS = [(p, "0.00000500") for p in (
    "0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
    "0.04970", "0.04965", "0.04960", "0.04955", "0.04950",
)]


def source() -> KrakenSource:
    return KrakenSource(None, Endpoints("http://127.0.0.1:1", "ws://127.0.0.1:1"))


def test_checksum_documented_example() -> None:
    assert checksum_text("0.05005") == "5005"
    assert checksum_text("0.00000500") == "500"
    assert checksum_text("45285.2") == "452852"
    assert book_checksum(DOC_BIDS, DOC_ASKS) == 974947235
    assert source().book_checksum([*DOC_BIDS, ("0.01", "1.0")], DOC_ASKS) == 974947235


def test_book_frames_keep_the_exchange_digits_for_the_checksum() -> None:
    asks = ",".join(f'{{"price": {p}, "qty": {q}}}' for p, q in DOC_ASKS)
    bids = ",".join(f'{{"price": {p}, "qty": {q}}}' for p, q in DOC_BIDS)
    raw = (
        '{"channel": "book", "type": "snapshot", "data": [{"symbol": "BTC/USD", '
        f'"bids": [{bids}], "asks": [{asks}], "checksum": 974947235, '
        '"timestamp": "2023-10-06T17:35:55.440295Z"}]}'
    )
    (event,) = source().parse_ws_message(raw)
    assert isinstance(event, WsBook) and event.snapshot and event.symbol == BTC_USD
    assert event.ask_texts is not None and event.ask_texts[0] == ("0.05005", "0.00000500")
    assert event.asks[0] == (0.05005, 0.000005)
    assert event.bid_texts is not None
    assert book_checksum(event.bid_texts, event.ask_texts) == event.checksum
    assert event.ts == 1696613755440295000


def test_trade_frames_share_the_rest_side_mapping() -> None:
    raw = json.dumps({"channel": "trade", "type": "update", "data": [
        {"symbol": "BTC/USD", "side": "sell", "price": 26858.3, "qty": 0.00020156,
         "ord_type": "market", "trade_id": 63624731, "timestamp": "2023-09-25T07:49:37.708706Z"},
        {"symbol": "ETH/USD", "side": "buy", "price": 1600.1, "qty": 1.5,
         "ord_type": "limit", "trade_id": 9, "timestamp": "2023-09-25T07:49:37.708706Z"},
    ]})
    events = source().parse_ws_message(raw)
    assert [type(e) for e in events] == [WsTrades, WsTrades]
    first = events[0]
    assert isinstance(first, WsTrades) and first.symbol == BTC_USD
    assert first.rows.row(0) == (1695628177708706000, "63624731", 26858.3, 0.00020156, "sell")


def ohlc_frame(kind: str, begins: list[str], close: float) -> str:
    return json.dumps({"channel": "ohlc", "type": kind, "data": [
        {"symbol": "BTC/USD", "open": 27562.0, "high": 27567.9, "low": 27562.0,
         "close": close, "trades": 5, "volume": 0.20530839, "vwap": 27564.4,
         "interval_begin": b, "interval": 5, "timestamp": "2023-10-04T16:26:30.123Z"}
        for b in begins
    ]})


def test_ohlc_bars_close_when_a_later_bar_arrives() -> None:
    src = source()
    (snap,) = src.parse_ws_message(ohlc_frame(
        "snapshot", ["2023-10-04T16:20:00.000000000Z", "2023-10-04T16:25:00.000000000Z"], 1.0))
    assert isinstance(snap, WsCandles) and snap.span == Span.parse("5m")
    assert snap.rows["closed"].to_list() == [True, False]
    (upd,) = src.parse_ws_message(ohlc_frame("update", ["2023-10-04T16:25:00.000000000Z"], 2.0))
    assert isinstance(upd, WsCandles) and upd.rows["closed"].to_list() == [False]
    (nxt,) = src.parse_ws_message(ohlc_frame("update", ["2023-10-04T16:30:00.000000000Z"], 3.0))
    assert isinstance(nxt, WsCandles)
    closed = nxt.rows.filter(pl.col("closed"))
    assert closed["ts"].to_list() == [1696436700000000000] and closed["close"].to_list() == [2.0]


def test_heartbeats_acks_and_errors() -> None:
    src = source()
    assert src.parse_ws_message('{"channel": "heartbeat"}') == [WsIgnore("heartbeat")]
    ack = '{"method": "subscribe", "result": {"channel": "book"}, "success": true}'
    assert src.parse_ws_message(ack) == [WsIgnore("subscribe")]
    with pytest.raises(ExchangeError, match="Currency pair not supported"):
        src.parse_ws_message('{"method": "subscribe", "success": false, '
                             '"error": "Currency pair not supported XBT/USDX"}')
    with pytest.raises(UnexpectedPayload):
        src.parse_ws_message('{"channel": "nonsense", "data": []}')


def test_subscriptions_and_url() -> None:
    src = source()
    sub = WsSubscription(DataType.BOOK, (BTC_USD,), book_depth=25)
    assert src.ws_url(sub) == "ws://127.0.0.1:1/v2"
    assert src.ws_subscribe_messages(sub) == [
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 25}}
    ]
    with pytest.raises(NoCapability, match="10, 25, 100, 500, 1000"):
        src.ws_subscribe_messages(WsSubscription(DataType.BOOK, (BTC_USD,), book_depth=20))
    ohlc = WsSubscription(DataType.OHLC, (BTC_USD,), span=Span.parse("1h"))
    assert src.ws_subscribe_messages(ohlc)[0]["params"]["interval"] == 60  # type: ignore[index]
