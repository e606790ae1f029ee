"""A fake Binance USD-M ``<symbol>@forceOrder`` stream (liquidations), for the gap tests.

Deterministic truth: liquidation ``i`` happens at ``T = t0_ms + i * step_ms`` with a
side, price and quantity derived from ``i`` (``force_order``), in the documented frame
shape (``{"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "E", "o": {...}}}``,
string numbers, no order id). A connection is sent every liquidation that happens while
it is open; one that happens while no connection is open is lost for good, as on
Binance (no REST serves liquidations). ``sessions`` holds the indices pushed on each
connection, in order; the connection is cut every ``drop_every`` pushes (``WsFake``).
No REST route is served: a stream that tried to heal from REST would fail loudly.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import get
from tests.fakes.ws import WsFake

__all__ = ["BybitLiquidationsFake", "LiquidationsFake", "all_liquidation", "force_order"]


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
                await ws.send_bytes(self.frame(i))
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
