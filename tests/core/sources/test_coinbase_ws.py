"""Coinbase WS hooks: documented frames -> events, shared maker->taker side, subscriptions."""

from __future__ import annotations

import json

import pytest

from dccd_core.domain import DataType, ExchangeError, NoCapability, Span, Symbol
from dccd_core.sources.base import Endpoints
from dccd_core.sources.coinbase import CoinbaseSource
from dccd_core.sources.ws import WsBook, WsIgnore, WsSubscription, WsTrades

BTC_USD = Symbol("BTC", "USD")


def source() -> CoinbaseSource:
    return CoinbaseSource(None, Endpoints("http://127.0.0.1:1", "ws://127.0.0.1:2"))


def match(trade_id: int, product: str = "BTC-USD", side: str = "sell") -> str:
    return json.dumps({
        "type": "match", "trade_id": trade_id, "sequence": 50 + trade_id,
        "maker_order_id": "ac928c66", "taker_order_id": "132fb6ae",
        "time": "2014-11-07T08:19:27.028459Z", "product_id": product,
        "size": "5.23512", "price": "400.23", "side": side,
    })


def test_matches_batch_into_one_frame_per_product_with_taker_sides() -> None:
    events = source().parse_ws_messages(
        [match(10), '{"type": "heartbeat", "product_id": "BTC-USD"}',
         match(11, side="buy"), match(3, "ETH-USD")]
    )
    assert [type(e) for e in events] == [WsTrades, WsIgnore, WsTrades]
    btc = events[0]
    assert isinstance(btc, WsTrades) and btc.symbol == BTC_USD
    assert btc.rows["trade_id"].to_list() == ["10", "11"]
    assert btc.rows["side"].to_list() == ["buy", "sell"]  # maker sell -> taker buy
    assert btc.rows["ts"].to_list() == [1415348367028459000] * 2


def test_level2_snapshot_and_update() -> None:
    src = source()
    (snap,) = src.parse_ws_message(json.dumps({
        "type": "snapshot", "product_id": "BTC-USD",
        "bids": [["10101.10", "0.45054140"]], "asks": [["10102.55", "0.57753524"]],
    }))
    assert isinstance(snap, WsBook) and snap.snapshot
    assert snap.bids == [(10101.10, 0.4505414)] and snap.asks == [(10102.55, 0.57753524)]
    (upd,) = src.parse_ws_message(json.dumps({
        "type": "l2update", "product_id": "BTC-USD", "time": "2019-08-14T20:42:27.265Z",
        "changes": [["buy", "10101.80000000", "0.162567"], ["sell", "10102.55", "0"]],
    }))
    assert isinstance(upd, WsBook) and not upd.snapshot
    assert upd.bids == [(10101.8, 0.162567)] and upd.asks == [(10102.55, 0.0)]
    assert upd.ts == 1565815347265000000


def test_error_frame_and_subscriptions() -> None:
    src = source()
    with pytest.raises(ExchangeError, match="Failed to subscribe"):
        src.parse_ws_message('{"type": "error", "message": "Failed to subscribe", '
                             '"reason": "BTC-USDX is not a valid product"}')
    sub = WsSubscription(DataType.TRADES, (BTC_USD, Symbol("CELO", "USD")))
    assert src.ws_url(sub) == "ws://127.0.0.1:2"
    assert src.ws_subscribe_messages(sub) == [{
        "type": "subscribe", "product_ids": ["BTC-USD", "CGLD-USD"],
        "channels": ["matches", "heartbeat"],
    }]
    with pytest.raises(NoCapability, match="ticker channel is not candles"):
        src.ws_url(WsSubscription(DataType.OHLC, (BTC_USD,), span=Span.parse("1m")))
