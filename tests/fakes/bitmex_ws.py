"""A fake BitMEX that streams: ``/realtime`` WebSocket plus the REST API it heals from.

Deterministic truth (the REST fake's trades, see ``tests.fakes.bitmex``):

* the connection is greeted with ``{"info": "Welcome ..."}``; topics come in the URL
  (``?subscribe=trade:XBTUSD,...``), each confirmed with ``{"success": true, ...}``;
  the text ``ping`` is answered ``pong`` (``pings`` counts them);
* trades: a trade exists once the wall clock reaches its millisecond. After the
  ``partial`` (the trades of the last second, whole milliseconds) the server pushes an
  ``insert`` per millisecond as trades come to exist;
* book (``orderBookL2_25``, XBTUSD-style level ids ``88e8 - price * 100``): a full book
  of 40 levels a side kept by the server; each step changes one level (size update,
  delete, or insert inside the range) and sends what changed in the top 25 as BitMEX
  does: ``delete`` / ``insert`` / ``update`` messages by level id (a level pushed out of
  the top 25 is deleted, one coming in is inserted). Update and delete rows carry no
  price, like BitMEX's older API. ``history`` keeps every true top-25 state (price,
  base amount = contracts / price, XBTUSD being inverse).

Faults: ``drop_every`` cuts the connection (no close frame) after every N data
messages; ``skip_rate`` silently skips a seeded share of data messages; ``unknown_id_at``
book steps also send an ``update`` for a level id the book never had (what a client
sees after losing the ``insert``).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from dccd_core.domain import NS_PER_MS
from tests.fakes.server import get
from tests.fakes.ws import WsFake

from .bitmex import BitmexFake, _iso

__all__ = ["BitmexStreamFake", "level_id"]

_DEPTH = 25
_LEVELS = 40
Level = tuple[float, float]


def level_id(price: float) -> int:
    """XBTUSD's level id for ``price`` (instrument index 88, tick 0.01)."""
    return 8_800_000_000 - round(price * 100)


@dataclass
class BitmexStreamFake(WsFake):
    """The REST fake plus the realtime handler; ``app()`` serves both."""

    rest: BitmexFake = field(
        default_factory=lambda: BitmexFake.around_now(density=10, quiet_every=0, min_per_second=4)
    )
    skip_rate: float = 0.0
    unknown_id_at: tuple[int, ...] = ()
    step_interval_s: float = 0.005
    seed: int = 3
    skipped: int = 0
    unknown_sent: int = 0
    #: every true top-25 state: (bids best first, asks best first) of (price, amount)
    history: list[tuple[tuple[Level, ...], tuple[Level, ...]]] = field(default_factory=list)
    step: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.bids: dict[float, int] = {
            42_000.0 - 0.5 * i: 100 * self._rng.randint(1, 500) for i in range(_LEVELS)
        }
        self.asks: dict[float, int] = {
            42_000.5 + 0.5 * i: 100 * self._rng.randint(1, 500) for i in range(_LEVELS)
        }
        self._record()

    # -- the book ------------------------------------------------------------------------

    def _view(self) -> dict[tuple[str, float], int]:
        bids = sorted(self.bids, reverse=True)[:_DEPTH]
        asks = sorted(self.asks)[:_DEPTH]
        view = {("Buy", p): self.bids[p] for p in bids}
        view.update({("Sell", p): self.asks[p] for p in asks})
        return view

    def _record(self) -> None:
        bids = sorted(self.bids, reverse=True)[:_DEPTH]
        asks = sorted(self.asks)[:_DEPTH]
        self.history.append(
            (
                tuple((p, self.bids[p] / p) for p in bids),
                tuple((p, self.asks[p] / p) for p in asks),
            )
        )

    def _mutate(self) -> None:
        """Change one level of the full book, never crossing it."""
        rng = self._rng
        is_bid = rng.random() < 0.5
        side = self.bids if is_bid else self.asks
        near = sorted(side, reverse=is_bid)[:30]
        roll = rng.random()
        if roll < 0.5:
            side[rng.choice(near)] = 100 * rng.randint(1, 500)
        elif roll < 0.75 and len(side) > _DEPTH + 5:
            del side[rng.choice(near)]
        else:
            best_other = min(self.asks) if is_bid else max(self.bids)
            edge = near[-1]
            lo, hi = (edge, best_other - 0.5) if is_bid else (best_other + 0.5, edge)
            free = [p / 2 for p in range(int(lo * 2), int(hi * 2) + 1) if p / 2 not in side]
            if free:
                side[rng.choice(free)] = 100 * rng.randint(1, 500)
            else:
                side[rng.choice(near)] = 100 * rng.randint(1, 500)

    def _step_messages(self, native: str, ts: str) -> list[dict[str, Any]]:
        """One book step: the BitMEX messages describing the top-25 change."""
        self.step += 1
        before = self._view()
        self._mutate()
        after = self._view()
        self._record()
        deleted = [k for k in before if k not in after]
        inserted = [k for k in after if k not in before]
        updated = [k for k in after if k in before and after[k] != before[k]]
        msgs: list[dict[str, Any]] = []
        table = "orderBookL2_25"

        def level(s: str, p: float, **fields: Any) -> dict[str, Any]:
            return {"symbol": native, "id": level_id(p), "side": s, **fields}

        def sized(s: str, p: float, **fields: Any) -> dict[str, Any]:
            return level(s, p, size=after[(s, p)], **fields)

        changes = (
            ("delete", [level(s, p) for s, p in deleted]),
            ("insert", [sized(s, p, price=p, timestamp=ts) for s, p in inserted]),
            ("update", [sized(s, p, timestamp=ts) for s, p in updated]),
        )
        for action, rows in changes:
            if rows:
                msgs.append({"table": table, "action": action, "data": rows})
        if self.step in self.unknown_id_at:
            self.unknown_sent += 1
            ghost = {"symbol": native, "id": level_id(1.5), "side": "Buy", "size": 100}
            msgs.append({"table": table, "action": "update", "data": [ghost]})
        return msgs

    def _partial_rows(self, native: str, ts: str) -> list[dict[str, Any]]:
        """Sells highest first, then buys highest first (as REST L2)."""
        view = self._view()
        sells = sorted((p for s, p in view if s == "Sell"), reverse=True)
        buys = sorted((p for s, p in view if s == "Buy"), reverse=True)
        return [
            {
                "symbol": native,
                "id": level_id(p),
                "side": side,
                "size": view[(side, p)],
                "price": p,
                "timestamp": ts,
            }
            for side, prices in (("Sell", sells), ("Buy", buys))
            for p in prices
        ]

    # -- WS ------------------------------------------------------------------------------

    @get("/realtime")
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept(request)
        topics = [t for t in request.query.get("subscribe", "").split(",") if t]
        await ws.send_str(
            '{"info":"Welcome to the BitMEX Realtime API.","version":"fake",'
            f'"timestamp":"{_iso(time.time_ns() // NS_PER_MS)}",'
            '"docs":"https://www.bitmex.com/app/wsAPI","limit":{"remaining":39}}'
        )
        for topic in topics:
            await ws.send_str(orjson.dumps({"success": True, "subscribe": topic}).decode())
        self._sent = 0

        async def pushes() -> None:
            tables = {t.split(":", 1)[0] for t in topics}
            natives = [t.split(":", 1)[1] for t in topics if ":" in t]
            if tables == {"trade"}:
                await self._trades(ws, natives)
            elif tables == {"orderBookL2_25"} and len(natives) == 1:
                await self._book(ws, natives[0])
            else:
                await ws.send_str(
                    orjson.dumps(
                        {"status": 400, "error": f"Unknown or unsupported topics {topics}"}
                    ).decode()
                )

        return await self.push_answering_pings(ws, pushes, "ping".__eq__, "pong")

    async def _send(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> bool:
        """Send one data message (or skip it); False once the connection was dropped."""
        if self.skip_rate and self._rng.random() < self.skip_rate:
            self.skipped += 1
            return True
        await ws.send_str(orjson.dumps(msg).decode())
        self._sent += 1
        return not self.cut_after(ws, self._sent)

    async def _trades(self, ws: web.WebSocketResponse, natives: list[str]) -> None:
        now_ms = time.time_ns() // NS_PER_MS
        for native in natives:
            recent = list(self.rest._trades(native, now_ms - 1_000, now_ms))
            partial = {
                "table": "trade",
                "action": "partial",
                "keys": [],
                "types": {"timestamp": "timestamp", "symbol": "symbol", "price": "float"},
                "filter": {"symbol": native},
                "data": recent,
            }
            await ws.send_str(orjson.dumps(partial).decode())
        sent_until = now_ms
        while self.running(ws):
            now_ms = time.time_ns() // NS_PER_MS
            for native in natives:
                by_ms: dict[str, list[dict[str, Any]]] = {}
                for row in self.rest._trades(native, sent_until + 1, now_ms):
                    by_ms.setdefault(row["timestamp"], []).append(row)
                for rows in by_ms.values():
                    if not await self._send(
                        ws, {"table": "trade", "action": "insert", "data": rows}
                    ):
                        return
            sent_until = now_ms
            await asyncio.sleep(0.005)

    async def _book(self, ws: web.WebSocketResponse, native: str) -> None:
        ts = _iso(time.time_ns() // NS_PER_MS)
        partial = {
            "table": "orderBookL2_25",
            "action": "partial",
            "keys": ["symbol", "id", "side"],
            "filter": {"symbol": native},
            "data": self._partial_rows(native, ts),
        }
        await ws.send_str(orjson.dumps(partial).decode())
        while self.running(ws):
            ts = _iso(time.time_ns() // NS_PER_MS)
            for msg in self._step_messages(native, ts):
                if not await self._send(ws, msg):
                    return
            await asyncio.sleep(self.step_interval_s)

    def app(self) -> web.Application:
        return self.ws_app(self.rest.app())
