"""A batch of single-trade frames (how exchanges send trades) is built once per symbol.

The stream hands a source every frame of a flush interval at once. Building a polars
frame per WebSocket frame cost ~500 us each (Bybit, OKX: ~100x the JSON decode), so each
parser turns a frame into plain records and builds each symbol's trades once per batch,
with the same builder as one frame: the rows must equal the frames parsed one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import polars as pl
import pytest

from dccd_core.domain import DataType, Symbol, UnexpectedPayload
from dccd_core.sources.base import Endpoints
from dccd_core.sources.bitfinex import BitfinexSource
from dccd_core.sources.bitmex import BitmexSource
from dccd_core.sources.kraken import KrakenSource
from dccd_core.sources.okx import OkxSource
from dccd_core.sources.registry import build_source
from dccd_core.sources.ws import WsIgnore, WsSource, WsSubscription, WsTrades

N = 200  # frames per symbol
BTC_USDT, ETH_USDT = Symbol.parse("BTC/USDT"), Symbol.parse("ETH/USDT")
BTC_USD, ETH_USD = Symbol.parse("BTC/USD"), Symbol.parse("ETH/USD")
MS = 1_704_067_200_000


def _bybit() -> tuple[WsSource, list[Any], list[Any]]:
    src = build_source("bybit", rest_url="http://127.0.0.1:9")
    assert isinstance(src, WsSource)
    src.ws_url(WsSubscription(DataType.TRADES, (BTC_USDT, ETH_USDT)))

    def frame(native: str, i: int) -> dict[str, Any]:
        trade = {"T": MS + i, "s": native, "S": "Buy" if i % 3 else "Sell", "v": "0.001",
                 "p": f"{100 + i % 7}.5", "L": "PlusTick", "i": f"{native}-{i}", "BT": False}
        return {"topic": f"publicTrade.{native}", "type": "snapshot", "ts": MS + i,
                "data": [trade]}

    return src, [], [frame(n, i) for i in range(N) for n in ("BTCUSDT", "ETHUSDT")]


def _okx() -> tuple[WsSource, list[Any], list[Any]]:
    src = build_source("okx", rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    assert isinstance(src, OkxSource)
    src._ws_contracts = {"BTC-USDT": None, "ETH-USDT": None}
    src.ws_url(WsSubscription(DataType.TRADES, (BTC_USDT, ETH_USDT)))

    def frame(inst: str, i: int) -> dict[str, Any]:
        trade = {"instId": inst, "tradeId": str(1000 + i), "px": f"{100 + i % 7}.5",
                 "sz": "0.25", "side": "buy" if i % 3 else "sell", "ts": str(MS + i)}
        return {"arg": {"channel": "trades-all", "instId": inst}, "data": [trade]}

    return src, [], [frame(n, i) for i in range(N) for n in ("BTC-USDT", "ETH-USDT")]


def _kraken() -> tuple[WsSource, list[Any], list[Any]]:
    src = KrakenSource(None, Endpoints("http://127.0.0.1:1", "ws://127.0.0.1:1"))

    def frame(name: str, i: int) -> dict[str, Any]:
        trade = {"symbol": name, "side": "sell" if i % 3 else "buy", "price": 100.5 + i % 7,
                 "qty": 0.25, "ord_type": "market", "trade_id": 1000 + i,
                 "timestamp": f"2024-01-01T00:00:{i % 60:02d}.{i:06d}Z"}
        return {"channel": "trade", "type": "update", "data": [trade]}

    heartbeat = [{"channel": "heartbeat"}]
    return src, heartbeat, [frame(n, i) for i in range(N) for n in ("BTC/USD", "ETH/USD")]


def _bitfinex() -> tuple[WsSource, list[Any], list[Any]]:
    src = BitfinexSource(http=None)
    subscribed = [
        {"event": "subscribed", "channel": "trades", "chanId": chan, "symbol": f"t{pair}",
         "pair": pair}
        for chan, pair in ((17, "BTCUSD"), (18, "ETHUSD"))
    ]
    frames = [
        [chan, "te", [1000 + i, MS + i, 0.25 if i % 3 else -0.25, 100.5 + i % 7]]
        for i in range(N)
        for chan in (17, 18)
    ]
    return src, subscribed, frames


def _bitmex() -> tuple[WsSource, list[Any], list[Any]]:
    src = BitmexSource(http=None)

    def frame(native: str, i: int) -> dict[str, Any]:
        trade = {"timestamp": f"2024-01-01T00:00:{i % 60:02d}.{i % 1000:03d}Z",
                 "symbol": native, "side": "Sell" if i % 3 else "Buy", "size": 100,
                 "price": 100.5 + i % 7, "trdMatchID": f"{native}-{i}", "homeNotional": 0.25,
                 "foreignNotional": 100, "trdType": "Regular"}
        return {"table": "trade", "action": "insert", "data": [trade]}

    return src, [], [frame(n, i) for i in range(N) for n in ("XBTUSD", "ETHUSD")]


@pytest.mark.parametrize(
    "make", [_bybit, _okx, _kraken, _bitfinex, _bitmex], ids=lambda f: f.__name__[1:]
)
def test_a_batch_of_single_trade_frames_is_one_event_per_symbol(
    make: Callable[[], tuple[WsSource, list[Any], list[Any]]],
) -> None:
    src, preamble, frames = make()
    for control in preamble:  # subscriptions (Bitfinex channel ids), heartbeats
        assert all(isinstance(e, WsIgnore) for e in src.parse_ws_message(orjson.dumps(control)))
    raws = [orjson.dumps(f) for f in frames]
    one_by_one: dict[Symbol, list[pl.DataFrame]] = {}
    for raw in raws:
        for event in src.parse_ws_message(raw):
            assert isinstance(event, WsTrades)
            one_by_one.setdefault(event.symbol, []).append(event.rows)
    batch = src.parse_ws_messages(raws)
    assert all(isinstance(e, WsTrades) for e in batch)
    assert [e.symbol for e in batch if isinstance(e, WsTrades)] == list(one_by_one)
    assert len(batch) == 2  # one event per symbol, not one per frame
    for event in batch:
        assert isinstance(event, WsTrades)
        assert event.rows.height == N
        assert event.rows.equals(pl.concat(one_by_one[event.symbol]))


def test_a_bad_value_anywhere_in_a_batch_still_refuses_it() -> None:
    src, _, frames = _okx()
    frames[N]["data"][0]["px"] = "nan"
    with pytest.raises(UnexpectedPayload, match=r"NaN|unreadable"):
        src.parse_ws_messages([orjson.dumps(f) for f in frames])
