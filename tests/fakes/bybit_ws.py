"""A fake Bybit v5 that streams: public WS topics plus the REST endpoint a stream heals from.

Deterministic truth, known to the tests:

* trades: trade ``i`` happens at ``t0_ms + i // per_ms`` (several per ms), with a
  UUID ``execId`` derived from ``i``; REST ``/v5/market/recent-trade`` serves the
  latest 1000 trades that exist (Bybit has no trade history over REST). The WS
  ``publicTrade`` topic pushes them in small batches and drops the connection every
  ``drop_every`` pushes (no close frame, like a network cut).
* book: update ``u`` changes a few levels; ``orderbook.50`` sends a ``snapshot`` on
  subscribe, then one ``delta`` per ``u`` (``u`` grows by one); ``gap_at`` leaves a
  delta out (the client must see the gap and resubscribe). ``book_history[u]`` is the
  truth after ``u``; pushes carry ``cts = t0_ms + u``.
* app pings ``{"op": "ping"}`` are answered with Bybit's pong frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from tests.fakes.market import ClockMarket
from tests.fakes.server import get, json_reply
from tests.fakes.ws import WsFake

__all__ = ["BybitStreamFake", "trade_record"]


def trade_record(i: int, t0_ms: int, per_ms: int) -> dict[str, Any]:
    """Trade ``i`` as a WS ``publicTrade`` record (REST renames the keys)."""
    return {
        "T": t0_ms + i // per_ms,
        "s": "BTCUSDT",
        "S": "Sell" if i % 3 == 0 else "Buy",
        "v": f"{0.001 + (i % 13) / 1000:.3f}",
        "p": f"{42000 + (i * 37) % 500 / 10:.1f}",
        "L": "PlusTick",
        "i": str(uuid.UUID(int=10**12 + i)),
        "BT": False,
    }


_PONG = orjson.dumps({"success": True, "ret_msg": "pong", "conn_id": "c1", "op": "ping"}).decode()


def _is_ping(text: str) -> bool:
    return bool(orjson.loads(text).get("op") == "ping")


@dataclass
class BybitStreamFake(ClockMarket, WsFake):
    """State and handlers of the fake; ``app()`` builds the aiohttp application."""

    #: Seconds between the subscribe ack and the first trade pushed, like a real
    #: subscription that starts after the client's connect-time REST heal.
    subscribe_delay_s: float = 0.0
    gap_at: tuple[int, ...] = ()
    book_interval_s: float = 0.005

    def __post_init__(self) -> None:
        self.seed_book(60, 0.1, 1)

    # -- truth ------------------------------------------------------------------------

    def trade(self, i: int) -> dict[str, Any]:
        return trade_record(i, self.t0_ms, self.per_ms)

    def index_of(self, exec_id: str) -> int:
        return uuid.UUID(exec_id).int - 10**12

    def _step_book(self) -> dict[str, Any]:
        self.update_id += 1
        u = self.update_id
        k = 1 + u % 40
        bid, ask = round(100.0 - k * 0.1, 1), round(100.0 + k * 0.1, 1)
        if u % 4 == 0:
            self.bids.pop(bid, None)
            b = [[f"{bid:.1f}", "0"]]
        else:
            self.bids[bid] = float(u % 7 + 1)
            b = [[f"{bid:.1f}", f"{u % 7 + 1}"]]
        self.asks[ask] = float(u % 11 + 1)
        self._record()
        return {
            "s": "BTCUSDT",
            "b": b,
            "a": [[f"{ask:.1f}", f"{u % 11 + 1}"]],
            "u": u,
            "seq": 7_000_000 + 3 * u,
        }

    def _snapshot(self) -> dict[str, Any]:
        bids, asks = self.book_history[self.update_id]
        return {
            "s": "BTCUSDT",
            "b": [[f"{p:.1f}", f"{a:g}"] for p, a in bids],
            "a": [[f"{p:.1f}", f"{a:g}"] for p, a in asks],
            "u": self.update_id,
            "seq": 7_000_000 + 3 * self.update_id,
        }

    # -- REST -------------------------------------------------------------------------

    @get("/v5/market/recent-trade")
    async def recent_trade(self, request: web.Request) -> web.Response:
        self.rest_requests += 1
        limit = int(request.query.get("limit", 500))
        if not 1 <= limit <= 1000:
            return json_reply({"retCode": 10001, "retMsg": "params error", "result": {}})
        now = self.now_index()
        rows = [
            {
                "execId": r["i"],
                "symbol": r["s"],
                "price": r["p"],
                "size": r["v"],
                "side": r["S"],
                "time": str(r["T"]),
                "isBlockTrade": False,
            }
            for r in reversed(self.truth(max(0, now - limit), now - 1))
        ]
        body = {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": rows}}
        return json_reply(body)

    # -- WS ---------------------------------------------------------------------------

    @get("/v5/public/{category}")
    async def public(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept(request)
        # Trades flow from the handshake on. (A real subscription starts when Bybit has
        # processed the subscribe frame, which can be after a heal's REST call; see the
        # report on operations.stream's heal-on-connect.)
        start = self.now_index()
        topics: list[str] = []
        with contextlib.suppress(asyncio.TimeoutError):
            msg = await ws.receive(timeout=5)
            if msg.type == WSMsgType.TEXT:
                req = orjson.loads(msg.data)
                topics = list(req.get("args", []))
                self.subscriptions.append(topics)
                await ws.send_str(
                    orjson.dumps(
                        {
                            "success": True,
                            "ret_msg": "",
                            "conn_id": "c1",
                            "req_id": "",
                            "op": "subscribe",
                        }
                    ).decode()
                )

        async def pushes() -> None:
            nonlocal start
            if any(t.startswith("publicTrade.") for t in topics):
                if self.subscribe_delay_s:
                    await asyncio.sleep(self.subscribe_delay_s)
                    start = self.now_index()
                await self._trades(ws, start)
            elif any(t.startswith("orderbook.") for t in topics):
                await self._book(ws, next(t for t in topics if t.startswith("orderbook.")))
            else:
                await ws.send_str(
                    orjson.dumps(
                        {"success": False, "ret_msg": "error:handler not found", "op": "subscribe"}
                    ).decode()
                )
                await asyncio.sleep(5)

        return await self.push_answering_pings(ws, pushes, _is_ping, _PONG)

    async def _trades(self, ws: web.WebSocketResponse, start: int) -> None:
        i = start
        sent = 0
        while not ws.closed:
            now = self.now_index()
            while i < now:
                batch = self.truth(i, min(now, i + 20) - 1)
                i += len(batch)
                push = {
                    "topic": "publicTrade.BTCUSDT",
                    "type": "snapshot",
                    "ts": batch[-1]["T"] + 1,
                    "data": batch,
                }
                await ws.send_bytes(orjson.dumps(push))
                sent += 1
                if self.cut_after(ws, sent):
                    return
            await asyncio.sleep(0.002)

    async def _book(self, ws: web.WebSocketResponse, topic: str) -> None:
        def push(kind: str, data: dict[str, Any]) -> bytes:
            cts = self.t0_ms + int(data["u"])
            return orjson.dumps(
                {"topic": topic, "type": kind, "ts": cts + 1, "data": data, "cts": cts}
            )

        await ws.send_bytes(push("snapshot", self._snapshot()))
        while not ws.closed:
            delta = self._step_book()
            if delta["u"] not in self.gap_at:
                await ws.send_bytes(push("delta", delta))
            await asyncio.sleep(self.book_interval_s)

    def app(self) -> web.Application:
        return self.ws_app()
