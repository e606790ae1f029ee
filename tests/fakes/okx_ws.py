"""A fake OKX v5 that streams: public/business WS channels plus the REST a stream heals from.

Deterministic truth, known to the tests:

* trades (``BTC-USDT-SWAP``, sizes in contracts of 0.01 BTC): trade ``i`` happens at
  ``t0_ms + i // per_ms`` with ``tradeId = FIRST_ID + i``; REST ``history-trades``
  (type 1/2, exclusive ``after``, newest first, <= 100) serves the trades that exist;
  ``trades-all`` pushes one trade per frame and drops the connection every
  ``drop_every`` frames. ``public/instruments`` gives ``ctVal``.
* book: update ``u`` changes a few levels; ``books`` sends a snapshot on subscribe,
  then updates chained by ``prevSeqId`` (seqIds step by 10, not 1), each with OKX's
  CRC32 checksum of the top 25 levels; every 7th update is a no-change heartbeat
  (``seqId == prevSeqId``, empty sides). ``gap_at`` leaves an update out (broken chain),
  ``bad_checksum_at`` sends a wrong checksum; both must trigger a resubscribe.
  ``book_history[u]`` is the truth (base amounts) after ``u``; pushes carry
  ``ts = t0_ms + u``.
* the text ``ping`` is answered ``pong``.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from tests.fakes.market import ClockMarket
from tests.fakes.server import get, json_reply
from tests.fakes.ws import WsFake

__all__ = ["CT_VAL", "FIRST_ID", "OkxStreamFake", "trade_record"]

FIRST_ID = 880_000_000
CT_VAL = 0.01
INST = "BTC-USDT-SWAP"


def trade_record(i: int, t0_ms: int, per_ms: int) -> dict[str, str]:
    """Trade ``i`` as both REST and ``trades-all`` send it (size in contracts)."""
    return {
        "instId": INST,
        "tradeId": str(FIRST_ID + i),
        "px": f"{42000 + (i * 37) % 500 / 10:.1f}",
        "sz": str(1 + i % 17),
        "side": "sell" if i % 3 == 0 else "buy",
        "ts": str(t0_ms + i // per_ms),
    }


def _crc(bids: list[list[str]], asks: list[list[str]]) -> int:
    parts: list[str] = []
    for i in range(max(len(bids[:25]), len(asks[:25]))):
        if i < len(bids[:25]):
            parts += bids[i][:2]
        if i < len(asks[:25]):
            parts += asks[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


@dataclass
class OkxStreamFake(ClockMarket, WsFake):
    """State and handlers of the fake; ``app()`` builds the aiohttp application."""

    gap_at: tuple[int, ...] = ()
    bad_checksum_at: tuple[int, ...] = ()
    book_interval_s: float = 0.004

    def __post_init__(self) -> None:
        self.seed_book(60, 0.1, 1, size=int, ask_offset=1)

    # -- truth ------------------------------------------------------------------------

    def trade(self, i: int) -> dict[str, Any]:
        return trade_record(i, self.t0_ms, self.per_ms)

    def _levels(self) -> tuple[list[list[str]], list[list[str]]]:
        bids = [[f"{p:.1f}", str(q), "0", "1"] for p, q in sorted(self.bids.items(), reverse=True)]
        asks = [[f"{p:.1f}", str(q), "0", "2"] for p, q in sorted(self.asks.items())]
        return bids, asks

    def _record(self, depth: int | None = None, scale: float | None = CT_VAL) -> None:
        super()._record(depth, scale)  # the whole book, in base units

    def _step_book(self) -> tuple[list[list[str]], list[list[str]]]:
        """Advance the truth by one update; return its changed levels (empty: no change)."""
        self.update_id += 1
        u = self.update_id
        if u % 7 == 0:
            self._record()
            return [], []
        k = 1 + u % 40
        bid, ask = round(100.0 - k * 0.1, 1), round(100.0 + k * 0.1, 1)
        if u % 4 == 0:
            self.bids.pop(bid, None)
            b = [[f"{bid:.1f}", "0", "0", "0"]]
        else:
            self.bids[bid] = u % 9 + 1
            b = [[f"{bid:.1f}", str(u % 9 + 1), "0", "1"]]
        self.asks[ask] = u % 11 + 1
        self._record()
        return b, [[f"{ask:.1f}", str(u % 11 + 1), "0", "1"]]

    # -- REST -------------------------------------------------------------------------

    @get("/api/v5/market/history-trades")
    async def history_trades(self, request: web.Request) -> web.Response:
        self.rest_requests += 1
        q = request.query
        limit = int(q.get("limit", 100))
        if q.get("instId") != INST or not 1 <= limit <= 100:
            return json_reply({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        now = self.now_index()
        last = now - 1
        if "after" in q:
            after = int(q["after"])
            if q.get("type", "1") == "1":
                last = min(last, after - FIRST_ID - 1)
            else:  # by ts: trades with ts < after
                last = min(last, (after - self.t0_ms) * self.per_ms - 1)
        rows = list(reversed(self.truth(max(0, last - limit + 1), last))) if last >= 0 else []
        return json_reply({"code": "0", "msg": "", "data": rows})

    @get("/api/v5/public/instruments")
    async def instruments(self, request: web.Request) -> web.Response:
        row = {
            "instType": "SWAP",
            "instId": INST,
            "ctVal": str(CT_VAL),
            "ctValCcy": "BTC",
            "ctType": "linear",
            "settleCcy": "USDT",
            "state": "live",
        }
        return json_reply({"code": "0", "msg": "", "data": [row]})

    # -- WS ---------------------------------------------------------------------------

    @get("/ws/v5/business", "/ws/v5/public")
    async def ws(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept(request)
        start = self.now_index()  # trades flow from the handshake on (see bybit_ws.py)
        args: list[dict[str, str]] = []
        with contextlib.suppress(asyncio.TimeoutError):
            msg = await ws.receive(timeout=5)
            if msg.type == WSMsgType.TEXT:
                args = list(orjson.loads(msg.data).get("args", []))
                self.subscriptions.append(args)
                for arg in args:
                    ack = {"event": "subscribe", "arg": arg, "connId": "a4d3ae55"}
                    await ws.send_str(orjson.dumps(ack).decode())
        channels = {a.get("channel") for a in args}

        async def pushes() -> None:
            if "trades-all" in channels and request.path.endswith("/business"):
                await self._trades(ws, start)
            elif "books" in channels and request.path.endswith("/public"):
                await self._book(ws)
            else:
                err = {"event": "error", "code": "60018", "msg": "Wrong URL or channel"}
                await ws.send_str(orjson.dumps(err).decode())
                await asyncio.sleep(5)

        return await self.push_answering_pings(ws, pushes, "ping".__eq__, "pong")

    async def _trades(self, ws: web.WebSocketResponse, start: int) -> None:
        i = start
        sent = 0
        arg = {"channel": "trades-all", "instId": INST}
        while not ws.closed:
            now = self.now_index()
            while i < now:
                push = {"arg": arg, "data": [trade_record(i, self.t0_ms, self.per_ms)]}
                i += 1
                await ws.send_bytes(orjson.dumps(push))
                sent += 1
                if self.cut_after(ws, sent):
                    return
            await asyncio.sleep(0.002)

    async def _book(self, ws: web.WebSocketResponse) -> None:
        arg = {"channel": "books", "instId": INST}
        bids, asks = self._levels()
        seq = 10 * self.update_id
        snap = {
            "asks": asks,
            "bids": bids,
            "ts": str(self.t0_ms + self.update_id),
            "checksum": _crc(bids, asks),
            "prevSeqId": -1,
            "seqId": seq,
        }
        await ws.send_bytes(orjson.dumps({"arg": arg, "action": "snapshot", "data": [snap]}))
        while not ws.closed:
            await asyncio.sleep(self.book_interval_s)
            b, a = self._step_book()
            prev, seq = seq, (seq if not b and not a else 10 * self.update_id)
            if self.update_id in self.gap_at:
                continue
            full_b, full_a = self._levels()
            checksum = _crc(full_b, full_a) + (1 if self.update_id in self.bad_checksum_at else 0)
            item = {
                "asks": a,
                "bids": b,
                "ts": str(self.t0_ms + self.update_id),
                "checksum": checksum,
                "prevSeqId": prev,
                "seqId": seq,
            }
            await ws.send_bytes(orjson.dumps({"arg": arg, "action": "update", "data": [item]}))

    def app(self) -> web.Application:
        return self.ws_app()
