"""A fake Binance that streams: combined WS streams plus the REST endpoints a stream heals from.

Deterministic truth, known to the tests:

* trades: aggregate trade ``i`` has id ``FIRST_ID + i``, ``T = t0_ms + i // per_ms`` and
  a price/qty/maker flag derived from ``i`` (``trade_row``). A trade exists once the
  wall clock has reached its ``T``; REST ``/api/v3/aggTrades`` (fromId / startTime /
  endTime / limit, Binance's rules) serves exactly the trades that exist.
* the WS ``@aggTrade`` stream sends each trade as it comes to exist, except that it
  silently skips a seeded share of frames (``skip_rate``) and drops the connection
  every ``drop_every`` frames (close without a close frame, like a network cut).
* klines: bar ``i`` (open time ``i * interval``) has values derived from ``i``
  (``kline_row``). Candles run on a fast virtual clock (``kline_speed`` virtual
  seconds per real second, starting at the wall clock), so a test sees dozens of 1m
  bars close in a second, and the clock is always ahead of the client's (the open bar
  is never inside a window the client heals). ``@kline_<interval>`` sends the open bar
  as it grows (``x: false``, partial values that never equal the final ones) and each
  bar once more when it closes (``x: true``), except the bars listed in ``kline_skip``
  (by index from the first bar sent). ``/api/v3/klines`` serves the truth, the open bar
  included with its partial values, as Binance does.
* book: the server keeps a real book; update ``u`` changes a few levels. ``@depth@100ms``
  sends ``{U, u, b, a}`` diffs; ``gap_at`` leaves one diff out (the client must see the
  sequence gap and resync); ``crossed_at`` sends one bogus bid above the best ask that
  the truth never had (the client must never store it). ``/api/v3/depth`` returns the
  current truth with ``lastUpdateId``; ``book_history[u]`` is the truth after ``u``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.market import ClockMarket
from tests.fakes.server import get, json_reply
from tests.fakes.ws import WsFake

__all__ = ["FIRST_ID", "BinanceStreamFake", "kline_row", "trade_row"]

FIRST_ID = 2_807_759_891


def trade_row(i: int, t0_ms: int, per_ms: int) -> dict[str, Any]:
    """The i-th aggregate trade, as Binance's REST returns it (WS adds e/E/s)."""
    return {
        "a": FIRST_ID + i,
        "p": f"{42000 + (i * 37) % 500 / 100:.8f}",
        "q": f"{0.001 + (i % 13) / 1000:.8f}",
        "f": 3_344_774_379 + i,
        "l": 3_344_774_379 + i,
        "T": t0_ms + i // per_ms,
        "m": i % 3 == 0,
        "M": True,
    }


_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


def interval_ms(interval: str) -> int:
    """``1m`` -> 60000 (Binance interval labels; weeks are not served by this fake)."""
    return int(interval[:-1]) * _UNIT_MS[interval[-1]]


def kline_row(open_ms: int, step_ms: int, *, partial: bool = False) -> list[Any]:
    """Bar opening at ``open_ms`` as a REST kline row; ``partial``: the still-open bar."""
    i = open_ms // step_ms
    o = 42000 + (i * 7) % 300
    c = 42000 + (i * 11) % 300
    h, lo = max(o, c) + i % 5 + 1, min(o, c) - i % 3 - 1
    v, n = 1 + (i % 17) / 10, 10 + i % 50
    if partial:  # so far: never the final values
        h, lo, c, v, n = o + 0.5, o - 0.5, o + 0.25, v / 4, n // 4
    return [open_ms, f"{o:.2f}", f"{h:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{v:.5f}",
            open_ms + step_ms - 1, f"{v * (o + c) / 2:.5f}", n, f"{v / 2:.5f}", "0", "0"]


@dataclass
class BinanceStreamFake(ClockMarket, WsFake):
    """State and handlers of the fake; ``app()`` builds the aiohttp application."""

    symbol: str = "BTCUSDT"
    skip_rate: float = 0.0  # share of trade frames silently not sent
    seed: int = 7
    depth_interval_s: float = 0.01
    #: The trade sender wakes this often and sends what came to exist, one frame a trade.
    trade_tick_s: float = 0.002
    gap_at: tuple[int, ...] = ()  # update ids whose diff is never sent
    crossed_at: tuple[int, ...] = ()  # update ids followed by a bogus crossed bid
    kline_speed: float = 1200.0  # virtual seconds per real second (1m bar: 50 ms)
    kline_skip: tuple[int, ...] = ()  # bars (index from the first sent) never sent closed
    kline_update_s: float = 0.01
    kline_rest_requests: int = 0
    first_kline_ms: int | None = None  # open time of the first bar streamed
    skipped: list[int] = field(default_factory=list)
    depth_requests: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.seed_book(40, 0.01, 2)

    # -- truth ------------------------------------------------------------------------

    def trade(self, i: int) -> dict[str, Any]:
        return trade_row(i, self.t0_ms, self.per_ms)

    def truth(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """All existing trades with ``start_ms <= T <= end_ms``."""
        first = max(0, (start_ms - self.t0_ms) * self.per_ms)
        last = min(self.now_index(), (end_ms - self.t0_ms + 1) * self.per_ms)
        return [trade_row(i, self.t0_ms, self.per_ms) for i in range(first, last)]

    def virtual_ms(self) -> int:
        """The candle clock: starts at ``t0_ms`` and runs ``kline_speed`` times faster."""
        return self.t0_ms + int((time.time() * 1000 - self.t0_ms) * self.kline_speed)

    def truth_klines(self, interval: str, start_ms: int, end_ms: int) -> list[list[Any]]:
        """The closed bars opening in ``[start_ms, end_ms)`` (final values)."""
        step = interval_ms(interval)
        closed_end = self.virtual_ms() // step * step
        first = -(-start_ms // step) * step
        return [kline_row(t, step) for t in range(first, min(end_ms, closed_end), step)]

    def _step_book(self) -> dict[str, Any]:
        """Advance the truth by two update ids; return the diff covering them."""
        first = self.update_id + 1
        changes_b: list[list[str]] = []
        changes_a: list[list[str]] = []
        for _ in range(2):
            self.update_id += 1
            u = self.update_id
            k = 1 + u % 30
            bid = round(100.0 - k * 0.01, 2)
            ask = round(100.0 + k * 0.01, 2)
            if u % 5 == 0:
                self.bids.pop(bid, None)
                changes_b.append([f"{bid:.2f}", "0.00000000"])
            else:
                self.bids[bid] = float(u % 7 + 1)
                changes_b.append([f"{bid:.2f}", f"{u % 7 + 1:.8f}"])
            self.asks[ask] = float(u % 11 + 1)
            changes_a.append([f"{ask:.2f}", f"{u % 11 + 1:.8f}"])
            self._record()
        return {
            "e": "depthUpdate",
            "E": self.t0_ms + self.update_id,
            "s": self.symbol,
            "U": first,
            "u": self.update_id,
            "b": changes_b,
            "a": changes_a,
        }

    # -- REST -------------------------------------------------------------------------

    @get("/api/v3/aggTrades")
    async def agg_trades(self, request: web.Request) -> web.Response:
        self.rest_requests += 1
        q = request.query
        limit = min(int(q.get("limit", 500)), 1000)
        now = self.now_index()
        if "fromId" in q:
            i = int(q["fromId"]) - FIRST_ID
            rows = [trade_row(j, self.t0_ms, self.per_ms) for j in range(max(i, 0), now)]
            if "endTime" in q:
                rows = [r for r in rows if r["T"] <= int(q["endTime"])]
        else:
            start = int(q.get("startTime", self.t0_ms))
            end = int(q.get("endTime", start + 3_599_999))
            if "startTime" in q and "endTime" in q and end - start >= 3_600_000:
                return json_reply(
                    {"code": -1127, "msg": "More than 1 hours between startTime and endTime."},
                    status=400,
                )
            rows = self.truth(start, end)
        return json_reply(rows[:limit])

    @get("/api/v3/klines")
    async def klines(self, request: web.Request) -> web.Response:
        """``/api/v3/klines``: bars opening in [startTime, endTime] (inclusive ms), the open
        bar included with its partial values."""
        self.kline_rest_requests += 1
        q = request.query
        step = interval_ms(q["interval"])
        limit = min(int(q.get("limit", 500)), 1000)
        now = self.virtual_ms()
        open_bar = now // step * step
        start = -(-int(q.get("startTime", open_bar - (limit - 1) * step)) // step) * step
        end = min(int(q.get("endTime", now)), now)
        rows = [kline_row(t, step, partial=t == open_bar) for t in range(start, end + 1, step)]
        return json_reply(rows[:limit])

    @get("/api/v3/depth")
    async def depth(self, request: web.Request) -> web.Response:
        self.depth_requests += 1
        limit = int(request.query.get("limit", 100))
        body = {
            "lastUpdateId": self.update_id,
            "bids": [
                [f"{p:.2f}", f"{a:.8f}"] for p, a in sorted(self.bids.items(), reverse=True)[:limit]
            ],
            "asks": [[f"{p:.2f}", f"{a:.8f}"] for p, a in sorted(self.asks.items())[:limit]],
        }
        return json_reply(body)

    @get("/api/v3/exchangeInfo")
    async def exchange_info(self, request: web.Request) -> web.Response:
        body = {
            "symbols": [
                {
                    "symbol": self.symbol,
                    "baseAsset": "BTC",
                    "quoteAsset": "USDT",
                    "status": "TRADING",
                }
            ]
        }
        return json_reply(body)

    # -- WS ---------------------------------------------------------------------------

    @get("/stream")
    async def stream(self, request: web.Request) -> web.StreamResponse:
        names = request.query.get("streams", "").split("/")
        ws = await self.accept(request)
        if any(n.endswith("@aggTrade") for n in names):
            sender = asyncio.create_task(self._trades(ws))
        elif any("@kline_" in n for n in names):
            interval = next(n for n in names if "@kline_" in n).split("@kline_")[1]
            sender = asyncio.create_task(self._klines(ws, interval))
        elif any("@depth" in n for n in names):
            sender = asyncio.create_task(self._depth_stream(ws))
        else:
            await ws.send_str(orjson.dumps({"code": 2, "msg": "Invalid request"}).decode())
            sender = asyncio.create_task(asyncio.sleep(3600))
        await self.read_until_closed(ws, [sender])
        return ws

    async def _trades(self, ws: web.WebSocketResponse) -> None:
        stream = f"{self.symbol.lower()}@aggTrade"
        i = self.now_index()
        sent = 0
        while not ws.closed:
            now = self.now_index()
            while i < now:
                row = trade_row(i, self.t0_ms, self.per_ms)
                i += 1
                if self.skip_rate and self._rng.random() < self.skip_rate:
                    self.skipped.append(row["a"])
                    continue
                data = {"e": "aggTrade", "E": row["T"] + 1, "s": self.symbol, **row}
                await ws.send_bytes(orjson.dumps({"stream": stream, "data": data}))
                sent += 1
                if self.cut_after(ws, sent):
                    return
            await asyncio.sleep(self.trade_tick_s)

    async def _klines(self, ws: web.WebSocketResponse, interval: str) -> None:
        stream = f"{self.symbol.lower()}@kline_{interval}"
        step = interval_ms(interval)
        bar = self.virtual_ms() // step * step
        if self.first_kline_ms is None:
            self.first_kline_ms = bar
        first = self.first_kline_ms
        sent = 0
        while not ws.closed:
            now = self.virtual_ms()
            frames = []
            while bar + step <= now:  # closed since the last loop: its final frame
                if (bar - first) // step not in self.kline_skip:
                    frames.append((kline_row(bar, step), True))
                bar += step
            frames.append((kline_row(bar, step, partial=True), False))
            for row, closed in frames:
                k = {"t": row[0], "T": row[6], "s": self.symbol, "i": interval, "f": 1,
                     "L": row[8], "o": row[1], "c": row[4], "h": row[2], "l": row[3],
                     "v": row[5], "n": row[8], "x": closed, "q": row[7], "V": row[9],
                     "Q": "0", "B": "0"}
                data = {"e": "kline", "E": now, "s": self.symbol, "k": k}
                await ws.send_bytes(orjson.dumps({"stream": stream, "data": data}))
                sent += 1
                if self.cut_after(ws, sent):
                    return
            await asyncio.sleep(self.kline_update_s)

    async def _depth_stream(self, ws: web.WebSocketResponse) -> None:
        stream = f"{self.symbol.lower()}@depth@100ms"
        sent = 0
        while not ws.closed:
            diff = self._step_book()
            if any(diff["U"] <= g <= diff["u"] for g in self.gap_at):
                await asyncio.sleep(self.depth_interval_s)
                continue
            await ws.send_bytes(orjson.dumps({"stream": stream, "data": diff}))
            sent += 1
            if any(diff["U"] <= c <= diff["u"] for c in self.crossed_at):
                best_ask = min(self.asks)
                bogus = {
                    **diff,
                    "U": diff["u"],
                    "u": diff["u"],
                    "b": [[f"{best_ask + 0.5:.2f}", "1"]],
                    "a": [],
                }
                # Same ids as the previous diff's end: a valid-looking (stale) id would be
                # skipped, so ship it as part of the next diff instead.
                nxt = self._step_book()
                nxt["b"] = nxt["b"] + bogus["b"]
                await ws.send_bytes(orjson.dumps({"stream": stream, "data": nxt}))
            if self.cut_after(ws, sent):
                return
            await asyncio.sleep(self.depth_interval_s)

    def app(self) -> web.Application:
        return self.ws_app()
