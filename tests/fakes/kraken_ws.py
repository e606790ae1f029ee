"""A fake Kraken that streams: WebSocket v2 plus the REST API it heals from.

Docs: https://docs.kraken.com/api/docs/websocket-v2/book and
https://docs.kraken.com/api/docs/guides/spot-ws-book-v2
One origin serves both: v2 at ``/v2`` and the REST endpoints of
:class:`~tests.fakes.kraken.KrakenFake` in live mode.

Deterministic truth, known to the tests:

* trades: a seeded live tape (a trade every ~1 ms from the first connection, ids
  sequential per pair, same-µs bursts). A trade exists once the wall clock reaches it;
  REST ``Trades`` serves exactly the existing ones, ``trade`` sends the new ones every
  few ms as one ``update`` per pair (``side`` is the taker's).
* protocol: a ``status`` frame on connect; ``{"method": "subscribe", "params": ...}`` is
  acknowledged per symbol (``success: false`` and an ``error`` for an unknown pair or
  book depth); ``{"method": "ping"}`` gets a ``pong``; ``heartbeat`` once a second.
* book: one market book per pair on a 0.1 price grid, 40 levels a side, stepped every
  ``book_interval_s`` (often beyond the top 10) and sent to each subscriber the way
  Kraken does: a ``snapshot`` of the subscribed depth, then ``update``s with only the
  changes inside that depth, ``qty: 0`` for a deleted level, the level that refills the
  range after a delete, and *no* delete for a level pushed out by an insert (the
  client truncates). Every message carries the CRC32 of the top 10 after it, over the
  exact texts sent (prices ``45283.5``, quantities with 8 decimals). Numbers are JSON
  numbers written with those digits. ``book_history[pair][time_us]`` is the truth.
* ohlc: a simulated clock, one 1-interval bar every ``ohlc_bar_s`` wall seconds from
  600 bars before now (so every bar is also among REST ``OHLC``'s last 720, with the
  same values: ``bar_at``); a snapshot of the last 10 bars, then the bar in progress
  every 10 ms; ``skip_bars`` are never sent (the client sees a gap and asks REST).
* faults: ``drop_every`` cuts the connection every N frames (``drop_every_trades``:
  every N trades, whatever the batching); ``skip_rate`` silently leaves out a seeded
  share of trade messages (ids in ``skipped``); ``bad_checksum_at`` /
  ``skip_book_at``: the first update a subscriber sees at or after those update
  numbers carries a wrong checksum / is silently left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.market import LiveTapeFeed, bar_at, now_us
from tests.fakes.server import get

from .coinbase import _iso
from .kraken import KrakenFake

__all__ = ["Book", "KrakenStreamFake", "now_us"]

#: ws symbol -> the REST fake's internal pair
PAIRS = {"BTC/USD": "XXBTZUSD", "ETH/USD": "XETHZUSD"}
_DEPTHS = (10, 25, 100, 500, 1000)
_LEVELS = 40
_MID_TICKS = 400_000  # 40 000.0 on a 0.1 grid

Book = tuple[list[tuple[float, float]], list[tuple[float, float]]]
_Side = dict[int, int]  # price ticks -> qty in 1e-8 units


def _price(ticks: int) -> str:
    return f"{ticks // 10}.{ticks % 10}"


def _qty(units: int) -> str:
    return f"{units // 10**8}.{units % 10**8:08d}"


def _strip(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def _top(side: _Side, n: int, bids: bool) -> list[tuple[int, int]]:
    return sorted(side.items(), reverse=bids)[:n]


def crc32_top10(bids: _Side, asks: _Side) -> int:
    """Kraken's checksum of the book: top 10 asks then top 10 bids, texts stripped."""
    text = "".join(
        _strip(_price(p)) + _strip(_qty(q))
        for p, q in _top(asks, 10, bids=False) + _top(bids, 10, bids=True)
    )
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def _levels_json(levels: list[tuple[int, int]]) -> str:
    return "[" + ",".join(f'{{"price":{_price(p)},"qty":{_qty(q)}}}' for p, q in levels) + "]"


@dataclass
class _Step:
    """One market change: the books before and after (price ticks -> qty units)."""

    symbol: str
    u: int
    ts_us: int
    before: tuple[_Side, _Side]
    after: tuple[_Side, _Side]


@dataclass
class KrakenStreamFake(LiveTapeFeed):
    """State and handlers of the fake; ``app()`` builds the aiohttp application."""

    seed: int = 11
    drop_every_trades: int = 0  # ... or after the frame that crosses each N trades
    bad_checksum_at: tuple[int, ...] = ()
    skip_book_at: tuple[int, ...] = ()
    skipped_book: list[int] = field(default_factory=list)
    bad_checksums: list[int] = field(default_factory=list)
    book_history: dict[str, dict[int, Book]] = field(
        default_factory=lambda: {s: {} for s in PAIRS}
    )
    #: ohlc: one simulated bar every ``ohlc_bar_s`` wall seconds, from 600 bars ago (so
    #: every bar is also among REST's last 720); bars never sent over WS (by index)
    ohlc_bar_s: float = 0.05
    skip_bars: tuple[int, ...] = ()
    ohlc_first_s: int = 0
    #: levels pushed out of a subscriber's range with no message (it must truncate)
    pushed_out: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.rest = self.live_market(KrakenFake, "kraken", ((400, 25), (1_500, 60)))
        self.books: dict[str, tuple[_Side, _Side]] = {s: self._initial_book() for s in PAIRS}
        self._book_subscribers: dict[str, dict[asyncio.Queue[_Step], int]] = {
            s: {} for s in PAIRS
        }
        self._faults: list[str] = []  # "checksum"/"skip", for the next visible update

    # -- truth ------------------------------------------------------------------------

    def truth_trades(self, symbol: Any, start: int, end: int) -> Any:
        """The trades of ``[start, end)`` (ns) in the trades schema."""
        return self.rest.truth_trades(symbol, start, end)

    def _initial_book(self) -> tuple[_Side, _Side]:
        bids = {_MID_TICKS - k: 10**7 * k for k in range(1, _LEVELS + 1)}
        asks = {_MID_TICKS + k: 2 * 10**7 * k for k in range(1, _LEVELS + 1)}
        return bids, asks

    def _step(self, symbol: str) -> _Step:
        bids, asks = self.books[symbol]
        before = (dict(bids), dict(asks))
        self.updates += 1
        rng = self._rng
        k = 1 + int(rng.random() * 1.5 * 20)  # half of the changes beyond the top 10
        side, price = (bids, _MID_TICKS - k) if rng.random() < 0.5 else (asks, _MID_TICKS + k)
        if price in side and rng.random() < 0.45:
            del side[price]
        else:
            side[price] = rng.randint(1, 300_000_000)
        ts_us = self.book_stamp_us()
        self.book_history[symbol][ts_us] = (
            [(p / 10, q / 10**8) for p, q in _top(bids, _LEVELS, bids=True)],
            [(p / 10, q / 10**8) for p, q in _top(asks, _LEVELS, bids=False)],
        )
        return _Step(symbol, self.updates, ts_us, before, (dict(bids), dict(asks)))

    # -- WS ---------------------------------------------------------------------------

    @get("/v2")
    async def v2(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept(request)
        self.open_market(self.rest)
        counter = {"sent": 0}
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(self._heartbeats(ws))]
        await ws.send_str(orjson.dumps({"channel": "status", "type": "update", "data": [{
            "api_version": "v2", "connection_id": 12_345_678 + self.connections,
            "system": "online", "version": "2.0.10"}]}).decode())
        await self.read_until_closed(
            ws, tasks, lambda text: self._on_request(ws, text, counter)
        )
        return ws

    async def _on_request(
        self, ws: web.WebSocketResponse, text: str, counter: dict[str, int]
    ) -> asyncio.Task[None] | None:
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self._reply(ws, {"error": "Malformed request", "success": False})
            return None
        method = body.get("method") if isinstance(body, dict) else None
        if method == "ping":
            await self._reply(ws, {"method": "pong", "req_id": body.get("req_id")})
            return None
        if method != "subscribe":
            await self._reply(ws, {"error": f"Method not found {method}", "success": False})
            return None
        params = body.get("params") or {}
        channel = params.get("channel")
        symbols = list(params.get("symbol") or [])
        self.subscriptions.append(params)
        depth = int(params.get("depth", 10))
        good = []
        for symbol in symbols:
            error = None
            if symbol not in PAIRS:
                error = f"Currency pair not supported {symbol}"
            elif channel == "book" and depth not in _DEPTHS:
                error = "Invalid depth"
            elif channel not in ("trade", "book", "ohlc"):
                error = f"Channel {channel} not supported"
            if error:
                await self._reply(ws, {"method": "subscribe", "error": error, "success": False,
                                       "symbol": symbol})
                continue
            result: dict[str, Any] = {"channel": channel, "symbol": symbol,
                                      "snapshot": params.get("snapshot", True)}
            if channel == "book":
                result["depth"] = depth
            await self._reply(ws, {"method": "subscribe", "result": result, "success": True})
            good.append(symbol)
        if not good:
            return None
        if channel == "trade":
            return asyncio.create_task(self._trades(ws, good, counter))
        if channel == "ohlc":
            minutes = int(params.get("interval", 1))
            return asyncio.create_task(self._ohlc(ws, good, minutes, counter))
        return asyncio.create_task(self._book(ws, good, depth, counter))

    async def _reply(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        stamp = _iso(now_us())
        await ws.send_str(orjson.dumps({**frame, "time_in": stamp, "time_out": stamp}).decode())

    async def _heartbeats(self, ws: web.WebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.heartbeat_s)
            with contextlib.suppress(ConnectionError):
                await ws.send_str('{"channel":"heartbeat"}')

    async def _trades(
        self, ws: web.WebSocketResponse, symbols: list[str], counter: dict[str, int]
    ) -> None:
        position = {s: len(self.rest.existing(PAIRS[s])) for s in symbols}
        while not ws.closed:
            for symbol in symbols:
                existing = self.rest.existing(PAIRS[symbol])
                rows = existing[position[symbol]:]
                position[symbol] = len(existing)
                if not rows:
                    continue
                if self.skip_rate and self._rng.random() < self.skip_rate:
                    self.skipped.extend(r[0] for r in rows)
                    continue
                data = ",".join(
                    f'{{"symbol":"{symbol}","side":"{"buy" if buys else "sell"}",'
                    f'"price":{price:.2f},"qty":{amount:.8f},'
                    f'"ord_type":"{"market" if trade_id % 4 else "limit"}",'
                    f'"trade_id":{trade_id},"timestamp":"{_iso(ts_us)}"}}'
                    for trade_id, ts_us, price, amount, buys in rows
                )
                text = f'{{"channel":"trade","type":"update","data":[{data}]}}'
                if not await self.push(ws, text, counter):
                    return
                trades = counter["trades"] = counter.get("trades", 0) + len(rows)
                n = self.drop_every_trades
                if n and trades // n != (trades - len(rows)) // n:
                    self.drop(ws)
                    return
            await asyncio.sleep(0.003)

    def ohlc_bar(self, symbol: str, span_s: int, j: int) -> str | None:
        """Bar ``j`` of the simulated clock as a v2 ``ohlc`` entry (None: no trades)."""
        t = self.ohlc_first_s + j * span_s
        bar = bar_at(f"{self.rest.seed}:{PAIRS[symbol]}", t, span_s)
        if bar is None:
            return None
        return (
            f'{{"symbol":"{symbol}","open":{bar.open:.2f},"high":{bar.high:.2f},'
            f'"low":{bar.low:.2f},"close":{bar.close:.2f},"trades":{bar.count},'
            f'"volume":{bar.volume:.8f},"vwap":{bar.vwap:.1f},'
            f'"interval_begin":"{_iso(t * 1_000_000)}","interval":{span_s // 60},'
            f'"timestamp":"{_iso(now_us())}"}}'
        )

    async def _ohlc(
        self, ws: web.WebSocketResponse, symbols: list[str], minutes: int,
        counter: dict[str, int],
    ) -> None:
        """A snapshot of the last 10 bars, then the current bar every 10 ms (Kraken sends
        the open bar on every trade); a bar is closed once the next one shows up."""
        span_s = minutes * 60
        if not self.ohlc_first_s:
            self.ohlc_first_s = self.rest.open_bar_s_at(span_s) - 600 * span_s
            self._ohlc_wall = time.monotonic()
        def current() -> int:
            return int((time.monotonic() - self._ohlc_wall) / self.ohlc_bar_s)
        j = current()
        for kind, bars in (("snapshot", range(max(0, j - 9), j + 1)), ("update", None)):
            while True:
                todo = bars if bars is not None else [current()]
                entries = [e for s in symbols for b in todo if b not in self.skip_bars
                           if (e := self.ohlc_bar(s, span_s, b)) is not None]
                if entries:
                    text = f'{{"channel":"ohlc","type":"{kind}","data":[{",".join(entries)}]}}'
                    if not await self.push(ws, text, counter):
                        return
                if bars is not None:
                    break
                await asyncio.sleep(0.01)

    async def _book(
        self, ws: web.WebSocketResponse, symbols: list[str], depth: int, counter: dict[str, int]
    ) -> None:
        queue: asyncio.Queue[_Step] = asyncio.Queue()
        snapshots = []
        for symbol in symbols:  # snapshot and registration with no await in between
            bids, asks = self.books[symbol]
            entry = (
                f'{{"symbol":"{symbol}","bids":{_levels_json(_top(bids, depth, bids=True))},'
                f'"asks":{_levels_json(_top(asks, depth, bids=False))},'
                f'"checksum":{crc32_top10(bids, asks)}}}'
            )
            snapshots.append(f'{{"channel":"book","type":"snapshot","data":[{entry}]}}')
            self._book_subscribers[symbol][queue] = depth
        self.start_market(self._step_books)
        try:
            if not await self.push_all(ws, snapshots, counter):
                return
            while not ws.closed:
                step = await queue.get()
                text = self._update_text(step, depth)
                if text is None:
                    continue
                if self._faults and self._faults.pop(0) == "skip":
                    self.skipped_book.append(step.u)
                    continue
                if not await self.push(ws, text, counter):
                    return
        finally:
            for symbol in symbols:
                self._book_subscribers[symbol].pop(queue, None)

    def _update_text(self, step: _Step, depth: int) -> str | None:
        """The update a client subscribed at ``depth`` gets for ``step`` (None: nothing
        changed inside its range)."""
        parts = []
        for i, bids in ((0, True), (1, False)):
            full_before, full_after = step.before[i], step.after[i]
            before = dict(_top(full_before, depth, bids))
            after = dict(_top(full_after, depth, bids))
            changed = [(p, q) for p, q in after.items() if before.get(p) != q]
            deleted = [(p, 0) for p in before if p not in full_after]
            self.pushed_out += sum(1 for p in before if p not in after and p in full_after)
            parts.append(sorted(changed + deleted, reverse=bids))
        if not parts[0] and not parts[1]:
            return None
        checksum = crc32_top10(*step.after)
        if self._faults and self._faults[0] == "checksum":
            self._faults.pop(0)
            self.bad_checksums.append(step.u)
            checksum ^= 0x5A5A
        zero = "0"
        bids_json, asks_json = (
            "[" + ",".join(
                f'{{"price":{_price(p)},"qty":{_qty(q) if q else zero}}}' for p, q in levels
            ) + "]"
            for levels in parts
        )
        entry = (f'{{"symbol":"{step.symbol}","bids":{bids_json},"asks":{asks_json},'
                 f'"checksum":{checksum},"timestamp":"{_iso(step.ts_us)}"}}')
        return f'{{"channel":"book","type":"update","data":[{entry}]}}'

    async def _step_books(self) -> None:
        """The market: step every subscribed pair's book, hand the step to subscribers."""
        while any(self._book_subscribers.values()):
            for symbol, queues in self._book_subscribers.items():
                if not queues:
                    continue
                step = self._step(symbol)
                self._faults += ["checksum"] * (step.u in self.bad_checksum_at)
                self._faults += ["skip"] * (step.u in self.skip_book_at)
                for queue in queues:
                    queue.put_nowait(step)
            await asyncio.sleep(self.book_interval_s)

    def app(self) -> web.Application:
        return self.ws_app(self.rest.app())
