"""Fake liquidations streams (Binance ``forceOrder``, Bybit ``allLiquidation``, OKX
``liquidation-orders``, BitMEX ``liquidation``), for the stream and gap tests.

Deterministic truth: liquidation ``i`` happens at ``T = t0_ms + i * step_ms`` with a
side, price and quantity derived from ``i`` (``force_order``), in the documented frame
shape (``{"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E", "o": {...}}}``,
string numbers, no order id). A connection is sent every liquidation that happens while
it is open; one that happens while no connection is open is lost for good, as on
Binance (no REST serves liquidations). ``sessions`` holds the indices pushed on each
connection, in order; the connection is cut every ``drop_every`` pushes (``WsFake``).
No REST route is served but the instrument listings OKX and BitMEX read for contract
sizes before connecting: a stream that tried to heal from REST would fail loudly.

The same liquidation ``i`` (time, side, price, quantity in base) is spoken in each
exchange's words: OKX's swap sizes in contracts of ``OKX_CT_VAL`` BTC, BitMEX's XBTUSDT
sizes in contracts of 1/1,000,000 XBT (``underlyingToPositionMultiplier``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.bitmex import INSTRUMENTS as BITMEX_INSTRUMENTS
from tests.fakes.server import get, json_reply
from tests.fakes.ws import WsFake

__all__ = [
    "BITMEX_MULTIPLIER",
    "OKX_CT_VAL",
    "BitmexLiquidationsFake",
    "BybitLiquidationsFake",
    "LiquidationsFake",
    "OkxLiquidationsFake",
    "all_liquidation",
    "bitmex_insert",
    "force_order",
    "okx_liquidation",
]

OKX_CT_VAL = 0.001
BITMEX_MULTIPLIER = 1_000_000


def force_order(i: int, t0_ms: int, step_ms: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    """The ``data`` of liquidation ``i`` as Binance sends it (USD-M ``forceOrder``)."""
    qty = f"{0.001 * (1 + i % 7):.3f}"
    price = f"{42000 + (i * 37) % 500 / 10:.1f}"
    trade_ms = t0_ms + i * step_ms
    return {
        "e": "forceOrder",
        "E": trade_ms + 1,
        "o": {"s": symbol, "S": "SELL" if i % 3 else "BUY", "o": "LIMIT", "f": "IOC",
              "q": qty, "p": price, "ap": price, "X": "FILLED", "l": qty, "z": qty,
              "T": trade_ms},
    }  # fmt: skip


def all_liquidation(i: int, t0_ms: int, step_ms: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    """Liquidation ``i`` as one Bybit ``allLiquidation`` push (``S``: the liquidated
    position's side, the opposite of Binance's order side for the same liquidation)."""
    o = force_order(i, t0_ms, step_ms, symbol)["o"]
    row = {"T": o["T"], "s": symbol, "S": "Buy" if o["S"] == "SELL" else "Sell", "v": o["z"],
           "p": o["ap"]}  # fmt: skip
    return {"topic": f"allLiquidation.{symbol}", "type": "snapshot", "ts": o["T"] + 1,
            "data": [row]}  # fmt: skip


@dataclass
class LiquidationsFake(WsFake):
    """Binance's combined stream carrying ``btcusdt@forceOrder`` (see the module docstring)."""

    step_ms: int = 5
    t0_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    sessions: list[list[int]] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)

    #: after a cut, the next handshake waits this long (a network down for a while): the
    #: liquidations of that time are lost for sure, however fast the client reconnects
    outage_ms: int = 0

    async def accept(self, request: web.Request) -> web.WebSocketResponse:
        if self.drops and self.outage_ms:
            await asyncio.sleep(self.outage_ms / 1000)
        return await super().accept(request)

    @property
    def sent(self) -> list[int]:
        """Every index pushed, all connections together."""
        return [i for session in self.sessions for i in session]

    def index_of(self, ts_ns: int) -> int:
        """The index of the liquidation stored at ``ts_ns``."""
        return (ts_ns // 1_000_000 - self.t0_ms) // self.step_ms

    def now_index(self) -> int:
        """The first liquidation not happened yet."""
        return (int(time.time() * 1000) - self.t0_ms) // self.step_ms + 1

    @get("/stream")
    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.streams.append(request.query.get("streams", ""))
        return await self.serve_ws(request)

    async def serve_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self.accept(request)
        await self.read_until_closed(ws, [asyncio.create_task(self._push(ws))], self.on_text)
        return ws

    async def on_text(self, text: str) -> None:
        """A client frame (Binance: none expected)."""

    async def send(self, ws: web.WebSocketResponse, i: int) -> None:
        """Push liquidation ``i`` (one frame; BitMEX adds the order's progress)."""
        await ws.send_bytes(self.frame(i))

    def frame(self, i: int) -> bytes:
        """Liquidation ``i`` as the exchange pushes it."""
        data = force_order(i, self.t0_ms, self.step_ms)
        return orjson.dumps({"stream": "btcusdt@forceOrder", "data": data})

    async def _push(self, ws: web.WebSocketResponse) -> None:
        i = self.now_index()  # what happened before this connection is lost
        counter = {"sent": 0}
        sent: list[int] = []
        self.sessions.append(sent)
        while self.running(ws):
            now = self.now_index()
            while i < now:
                if ws.closed:
                    return
                await self.send(ws, i)
                sent.append(i)
                i += 1
                counter["sent"] += 1
                if self.cut_after(ws, counter["sent"]):
                    return
            await asyncio.sleep(0.005)

    def app(self) -> web.Application:
        return self.ws_app()


@dataclass
class BybitLiquidationsFake(LiquidationsFake):
    """The same liquidations on Bybit's ``/v5/public/linear``: the client's subscribe
    messages are recorded, its ``{"op": "ping"}`` answered with Bybit's pong."""

    subscriptions: list[Any] = field(default_factory=list)
    ws_handle: web.WebSocketResponse | None = None

    @get("/v5/public/linear")
    async def linear(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_ws(request)

    async def serve_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self.accept(request)
        self.ws_handle = ws
        await self.read_until_closed(ws, [asyncio.create_task(self._push(ws))], self.on_text)
        return ws

    async def on_text(self, text: str) -> None:
        msg = orjson.loads(text)
        if msg.get("op") == "subscribe":
            self.subscriptions.append(msg["args"])
        elif msg.get("op") == "ping" and self.ws_handle is not None:
            self.pings += 1
            pong = {"success": True, "ret_msg": "pong", "conn_id": "c1", "op": "ping"}
            await self.ws_handle.send_bytes(orjson.dumps(pong))

    def frame(self, i: int) -> bytes:
        return orjson.dumps(all_liquidation(i, self.t0_ms, self.step_ms))


def okx_liquidation(i: int, t0_ms: int, step_ms: int) -> dict[str, Any]:
    """Liquidation ``i`` as one OKX ``liquidation-orders`` push; every third push also
    carries another swap's liquidation (the channel is every swap's)."""
    o = force_order(i, t0_ms, step_ms)["o"]
    detail = {"bkLoss": "0", "bkPx": o["ap"], "ccy": "", "posSide": "long" if o["S"] == "SELL"
              else "short", "side": o["S"].lower(), "sz": str(round(float(o["z"]) / OKX_CT_VAL)),
              "ts": str(o["T"])}  # fmt: skip
    items = [{"details": [detail], "instFamily": "BTC-USDT", "instId": "BTC-USDT-SWAP",
              "instType": "SWAP", "uly": "BTC-USDT"}]  # fmt: skip
    if i % 3 == 0:
        other = {**detail, "bkPx": "2500.5", "sz": "7"}
        items.insert(0, {"details": [other], "instFamily": "ETH-USDT", "instId":
                         "ETH-USDT-SWAP", "instType": "SWAP", "uly": "ETH-USDT"})  # fmt: skip
    return {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": items}


def bitmex_insert(i: int, t0_ms: int, step_ms: int) -> dict[str, Any]:
    """Liquidation ``i`` as the BitMEX ``liquidation`` row its ``insert`` carries."""
    o = force_order(i, t0_ms, step_ms)["o"]
    return {"orderID": f"00000000-0000-0000-0000-{i:012d}", "symbol": "XBTUSDT",
            "side": "Sell" if o["S"] == "SELL" else "Buy", "price": float(o["ap"]),
            "leavesQty": round(float(o["z"]) * BITMEX_MULTIPLIER)}  # fmt: skip


@dataclass
class OkxLiquidationsFake(LiquidationsFake):
    """The liquidations on OKX's ``/ws/v5/public`` (subscribe recorded, text ``ping``
    answered ``pong``) and the ``public/instruments`` listing giving ``ctVal``."""

    subscriptions: list[Any] = field(default_factory=list)
    ws_handle: web.WebSocketResponse | None = None

    @get("/ws/v5/public")
    async def public(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_ws(request)

    @get("/api/v5/public/instruments")
    async def instruments(self, request: web.Request) -> web.Response:
        row = {
            "instType": "SWAP",
            "instId": "BTC-USDT-SWAP",
            "ctVal": str(OKX_CT_VAL),
            "ctValCcy": "BTC",
            "ctType": "linear",
            "settleCcy": "USDT",
            "state": "live",
        }
        return json_reply({"code": "0", "msg": "", "data": [row]})  # fmt: skip

    async def serve_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self.accept(request)
        self.ws_handle = ws
        await self.read_until_closed(ws, [asyncio.create_task(self._push(ws))], self.on_text)
        return ws

    async def on_text(self, text: str) -> None:
        if text == "ping":
            self.pings += 1
            if self.ws_handle is not None:
                await self.ws_handle.send_str("pong")
            return
        msg = orjson.loads(text)
        if msg.get("op") == "subscribe":
            self.subscriptions.append(msg["args"])
            if self.ws_handle is not None:
                ack = {"event": "subscribe", "arg": msg["args"][0], "connId": "a4d3ae55"}
                await self.ws_handle.send_bytes(orjson.dumps(ack))

    def frame(self, i: int) -> bytes:
        return orjson.dumps(okx_liquidation(i, self.t0_ms, self.step_ms))


@dataclass
class BitmexLiquidationsFake(LiquidationsFake):
    """The liquidations as BitMEX's realtime ``liquidation`` table: a greeting, the
    subscription's confirmation and a ``partial`` of two orders resting since before
    the connection (not liquidations of this session: never to be stored), then per
    liquidation an ``insert``, then its order's ``update`` (partly filled) and
    ``delete`` (gone). ``sent_at`` records when each insert was sent (ms)."""

    step_ms: int = 40
    subscribed: list[str] = field(default_factory=list)
    sent_at: dict[int, int] = field(default_factory=dict)
    ws_handle: web.WebSocketResponse | None = None

    @get("/realtime")
    async def realtime(self, request: web.Request) -> web.StreamResponse:
        self.subscribed.append(request.query.get("subscribe", ""))
        return await self.serve_ws(request)

    @get("/api/v1/instrument/active")
    async def instruments(self, request: web.Request) -> web.Response:
        return json_reply(BITMEX_INSTRUMENTS)

    async def on_text(self, text: str) -> None:
        if text == "ping" and self.ws_handle is not None:
            self.pings += 1
            await self.ws_handle.send_str("pong")

    async def serve_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self.accept(request)
        self.ws_handle = ws
        resting = [{**bitmex_insert(-k, self.t0_ms, self.step_ms), "orderID": f"resting-{k}"}
                   for k in (1, 2)]  # fmt: skip
        for msg in (
            {"info": "Welcome to the BitMEX Realtime API.", "version": "2.0.0",
             "timestamp": "2024-01-01T00:00:00.000Z", "docs": "https://www.bitmex.com/app/wsAPI",
             "heartbeatEnabled": False},
            {"success": True, "subscribe": "liquidation:XBTUSDT",
             "request": {"op": "subscribe", "args": ["liquidation:XBTUSDT"]}},
            {"table": "liquidation", "action": "partial", "keys": ["orderID"],
             "types": {"orderID": "guid", "symbol": "symbol", "side": "symbol",
                       "price": "float", "leavesQty": "long"},
             "filter": {"symbol": "XBTUSDT"}, "data": resting},
        ):  # fmt: skip
            await ws.send_bytes(orjson.dumps(msg))
        await self.read_until_closed(ws, [asyncio.create_task(self._push(ws))], self.on_text)
        return ws

    def frame(self, i: int) -> bytes:
        self.sent_at[i] = int(time.time() * 1000)
        return orjson.dumps(
            {"table": "liquidation", "action": "insert",
             "data": [bitmex_insert(i, self.t0_ms, self.step_ms)]}
        )  # fmt: skip

    async def send(self, ws: web.WebSocketResponse, i: int) -> None:
        """The insert of liquidation ``i``, then its order's update and delete."""
        await ws.send_bytes(self.frame(i))
        row = bitmex_insert(i, self.t0_ms, self.step_ms)
        left = {"orderID": row["orderID"], "symbol": "XBTUSDT", "leavesQty": row["leavesQty"] // 2}
        gone = {"orderID": row["orderID"], "symbol": "XBTUSDT"}
        for action, body in (("update", left), ("delete", gone)):
            if not ws.closed:
                msg = {"table": "liquidation", "action": action, "data": [body]}
                await ws.send_bytes(orjson.dumps(msg))
