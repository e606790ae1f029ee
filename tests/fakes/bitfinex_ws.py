"""A fake Bitfinex that streams: WebSocket v2 ``/ws/2`` plus the REST API it heals from.

Deterministic truth (the REST fake's trades, see ``tests.fakes.bitfinex``):

* trades: a trade exists once the wall clock reaches its MTS. After ``subscribe`` the
  server answers ``subscribed`` with a fresh ``chanId``, a snapshot of the last trades,
  then ``te`` (and ``tu``) frames as trades come to exist, heartbeats ``[id, "hb"]``;
  it silently skips a seeded share of ``te`` frames (``skip_rate``) and cuts the
  connection every ``drop_every`` frames (no close frame).
* book (P0, len 25, OB_CHECKSUM): a real book kept by the server, one level changed per
  step, ``[id, [PRICE, COUNT, AMOUNT]]`` then ``[id, "cs", CRC32]``. Numbers are written
  as JavaScript prints them (``0.00005``, ``30000``), the text the checksum covers.
  ``gap_at`` steps are never sent (the checksum after them cannot match: the client
  must resubscribe). ``history`` keeps every true top-of-book state.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from dccd_core.domain import NS_PER_MS
from tests.fakes.server import get
from tests.fakes.ws import WsFake

from .bitfinex import BitfinexFake

__all__ = ["BitfinexStreamFake"]

# Amount texts chosen so that Python's repr differs from JavaScript's for some.
_AMOUNTS = ("0.5", "1.25", "0.00005", "2", "0.1", "3.5", "0.00001", "0.75")


def _crc(parts: list[str]) -> int:
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


@dataclass
class BitfinexStreamFake(WsFake):
    """The REST fake plus WS handlers; ``app()`` serves both."""

    rest: BitfinexFake = field(
        default_factory=lambda: BitfinexFake.around_now(density=20, quiet_every=10**9)
    )
    skip_rate: float = 0.0
    gap_at: tuple[int, ...] = ()
    step_interval_s: float = 0.005
    seed: int = 5
    skipped: list[str] = field(default_factory=list)
    #: every true book state (top 25 per side): (bids, asks) of (price, amount)
    history: list[tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]] = field(
        default_factory=list
    )
    step: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        # price text -> amount text (asks negative), 30 levels a side
        self.bids: dict[str, str] = {str(30_000 - i): _AMOUNTS[i % 8] for i in range(30)}
        self.asks: dict[str, str] = {
            f"{30_000 + 0.5 + i}": "-" + _AMOUNTS[(i + 3) % 8] for i in range(30)
        }
        self._record()

    # -- book ------------------------------------------------------------------------

    def _top(self) -> tuple[list[str], list[str]]:
        bids = sorted(self.bids, key=float, reverse=True)[:25]
        asks = sorted(self.asks, key=float)[:25]
        return bids, asks

    def _record(self) -> None:
        bids, asks = self._top()
        self.history.append(
            (
                tuple((float(p), float(self.bids[p])) for p in bids),
                tuple((float(p), -float(self.asks[p])) for p in asks),
            )
        )

    def checksum(self) -> int:
        bids, asks = self._top()
        parts: list[str] = []
        for i in range(25):
            if i < len(bids):
                parts += [bids[i], self.bids[bids[i]]]
            if i < len(asks):
                parts += [asks[i], self.asks[asks[i]]]
        return _crc(parts)

    def _step_book(self) -> str:
        """Change one level; return the raw update frame body ``[PRICE,COUNT,AMOUNT]``."""
        self.step += 1
        side = self.bids if self._rng.random() < 0.5 else self.asks
        sign = "" if side is self.bids else "-"
        price = self._rng.choice(
            sorted(side, key=float)[:20] if sign else sorted(side, key=float, reverse=True)[:20]
        )
        if self._rng.random() < 0.3 and len(side) > 26:
            del side[price]
            body = f"[{price},0,{sign}1]"
        else:
            amount = sign + self._rng.choice(_AMOUNTS)
            side[price] = amount
            body = f"[{price},{self._rng.randint(1, 9)},{amount}]"
        self._record()
        return body

    # -- WS ------------------------------------------------------------------------------

    @get("/ws/2")
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept(request)
        chan_id = 100 + self.connections
        await ws.send_str('{"event":"info","version":2,"serverId":"fake","platform":{"status":1}}')
        try:
            sub: dict[str, Any] = {}
            while not sub:
                msg = await ws.receive(timeout=5)
                if msg.type != WSMsgType.TEXT:
                    return ws
                data = orjson.loads(msg.data)
                if data.get("event") == "conf":
                    await ws.send_str('{"event":"conf","status":"OK","flags":131072}')
                elif data.get("event") == "subscribe":
                    sub = data
            ack = {
                "event": "subscribed",
                "chanId": chan_id,
                **{k: v for k, v in sub.items() if k != "event"},
            }
            if sub.get("channel") == "book":
                ack["pair"] = sub["symbol"][1:]
            await ws.send_str(orjson.dumps(ack).decode())
            if sub.get("channel") == "trades":
                await self._trades(ws, chan_id, sub["symbol"])
            elif sub.get("channel") == "book":
                await self._book(ws, chan_id)
        except (TimeoutError, ConnectionResetError, RuntimeError):
            pass
        return ws

    async def _trades(self, ws: web.WebSocketResponse, chan_id: int, native: str) -> None:
        now_ms = time.time_ns() // NS_PER_MS
        recent = list(self.rest._trades(native, now_ms - 2_000, now_ms, True))[:10]
        await ws.send_str(orjson.dumps([chan_id, recent]).decode())
        sent_until = now_ms
        sent = 0
        while self.running(ws):
            now_ms = time.time_ns() // NS_PER_MS
            for row in self.rest._trades(native, sent_until + 1, now_ms, False):
                if self.skip_rate and self._rng.random() < self.skip_rate:
                    self.skipped.append(str(row[0]))
                    continue
                await ws.send_str(orjson.dumps([chan_id, "te", row]).decode())
                await ws.send_str(orjson.dumps([chan_id, "tu", row]).decode())
                sent += 1
                if self.cut_after(ws, sent):
                    return
            sent_until = now_ms
            if self._rng.random() < 0.05:
                await ws.send_str(f'[{chan_id},"hb"]')
            await asyncio.sleep(0.005)

    async def _book(self, ws: web.WebSocketResponse, chan_id: int) -> None:
        bids, asks = self._top()
        rows = [f"[{p},2,{self.bids[p]}]" for p in bids] + [f"[{p},1,{self.asks[p]}]" for p in asks]
        await ws.send_str(f"[{chan_id},[{','.join(rows)}]]")
        await ws.send_str(f'[{chan_id},"cs",{self.checksum()}]')
        while self.running(ws):
            body = self._step_book()
            if self.step not in self.gap_at:
                await ws.send_str(f"[{chan_id},{body}]")
            await ws.send_str(f'[{chan_id},"cs",{self.checksum()}]')
            await asyncio.sleep(self.step_interval_s)

    def app(self) -> web.Application:
        return self.ws_app(self.rest.app())
