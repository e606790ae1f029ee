"""A fake Coinbase Exchange that streams: the WebSocket feed plus the REST API it heals from.

Docs: https://docs.cdp.coinbase.com/exchange/websocket-feed/channels
One origin serves both: the feed at ``/`` (the source connects to the ws origin as is)
and the REST endpoints of :class:`~tests.fakes.coinbase.CoinbaseFake` in live mode.

Deterministic truth, known to the tests:

* trades: a seeded live tape (``Tape``, a trade every ~1 ms from the first connection,
  consecutive ids per product, same-µs bursts, one longer than a REST page). A trade
  exists once the wall clock reaches its time; REST serves exactly the existing ones
  (``truth_trades``), the feed sends each as it comes to exist.
* feed protocol: a ``subscribe`` must arrive within 5 s; the reply is a
  ``subscriptions`` frame; ``matches`` starts with a ``last_match`` then one ``match``
  per trade (``side`` is the maker's, ``sequence`` grows with gaps as on the full
  channel); ``heartbeat`` once a second per product with ``last_trade_id``; an unknown
  product gets an ``error`` frame and the connection is closed.
* faults: ``drop_every`` cuts the connection (no close frame) every N frames;
  ``skip_rate`` silently leaves out a seeded share of matches (ids in ``skipped``).
* book (``level2_batch``): one market book per product, stepped every
  ``book_interval_s`` and broadcast to every subscriber as ``l2update`` changes stamped
  with their ``time`` (µs); a subscriber starts with a ``snapshot`` of the whole book.
  ``book_history[product][time_us]`` is the truth after that update. ``crossed_at`` adds a bogus
  bid above the best ask to those updates (never in the truth): a client that applies it
  has a crossed book and must resubscribe. Level2 carries no sequence ids or checksum.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from tests.fakes.market import LiveTapeFeed, now_us
from tests.fakes.server import get

from .coinbase import CoinbaseFake, _iso

__all__ = ["CoinbaseStreamFake", "now_us"]

PRODUCTS = ("BTC-USD", "ETH-USD")
_BOOK_LEVELS = 40
_TICK = 0.01

Book = tuple[list[tuple[float, float]], list[tuple[float, float]]]


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


@dataclass
class _Book:
    """The market book of one product: price in ticks -> size."""

    bids: dict[int, float] = field(default_factory=dict)
    asks: dict[int, float] = field(default_factory=dict)

    def top(self, n: int) -> Book:
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return ([(round(p * _TICK, 2), a) for p, a in bids],
                [(round(p * _TICK, 2), a) for p, a in asks])


@dataclass
class CoinbaseStreamFake(LiveTapeFeed):
    """State and handlers of the fake; ``app()`` builds the aiohttp application."""

    crossed_at: tuple[int, ...] = ()  # book update numbers carrying a bogus crossed bid
    #: product -> update time (µs) -> the truth (bids, asks, best first) after it
    book_history: dict[str, dict[int, Book]] = field(
        default_factory=lambda: {p: {} for p in PRODUCTS}
    )

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.rest = self.live_market(CoinbaseFake, "coinbase", ((300, 30), (2_000, 1_100)))
        self.books = {p: self._initial_book() for p in PRODUCTS}
        self._sequence = dict.fromkeys(PRODUCTS, 1_000_000)
        self._book_subscribers: dict[str, set[asyncio.Queue[str]]] = {p: set() for p in PRODUCTS}

    # -- truth ------------------------------------------------------------------------

    def truth_trades(self, symbol: Any, start: int, end: int) -> Any:
        """The trades of ``[start, end)`` (ns) in the trades schema, taker sides."""
        return self.rest.truth_trades(symbol, start, end)

    def _initial_book(self) -> _Book:
        book = _Book()
        mid = 4_000_000  # 40 000.00 in ticks
        for k in range(1, _BOOK_LEVELS + 1):
            book.bids[mid - k] = round(0.1 * k, 8)
            book.asks[mid + k] = round(0.2 * k, 8)
        return book

    def _step(self, product: str) -> tuple[int, list[list[str]]]:
        """Change one level of the market book; the changes as ``l2update`` sends them."""
        book = self.books[product]
        self.updates += 1
        u = self.updates
        rng = self._rng
        mid = 4_000_000
        k = 1 + int(rng.random() ** 2 * _BOOK_LEVELS)  # mostly near the top
        side, levels, price = (
            ("buy", book.bids, mid - k) if rng.random() < 0.5 else ("sell", book.asks, mid + k)
        )
        if price in levels and rng.random() < 0.4:
            del levels[price]
            size = 0.0
        else:
            size = round(0.01 + rng.random() * 3, 8)
            levels[price] = size
        changes = [[side, f"{price * _TICK:.2f}", f"{size:.8f}"]]
        if u in self.crossed_at:
            best_ask = min(book.asks)
            changes.append(["buy", f"{(best_ask + 50) * _TICK:.2f}", "1.00000000"])
        return u, changes

    # -- WS ---------------------------------------------------------------------------

    @get("/")
    async def feed(self, request: web.Request) -> web.StreamResponse:
        ws = await self.accept(request)
        self.open_market(self.rest)
        try:
            msg = await ws.receive(timeout=5.0)
        except TimeoutError:
            await ws.close()
            return ws
        sub = self._parse_subscribe(msg)
        if isinstance(sub, str):
            await ws.send_str(_dumps({"type": "error", "message": "Failed to subscribe",
                                      "reason": sub}))
            await ws.close()
            return ws
        products, channels = sub
        self.subscriptions.append({"product_ids": products, "channels": channels})
        await ws.send_str(_dumps({
            "type": "subscriptions",
            "channels": [{"name": c, "product_ids": products} for c in channels],
        }))
        counter = {"sent": 0}
        tasks = []
        if "heartbeat" in channels:
            tasks.append(asyncio.create_task(self._heartbeats(ws, products)))
        if "matches" in channels:
            tasks.append(asyncio.create_task(self._matches(ws, products, counter)))
        if "level2_batch" in channels or "level2" in channels:
            tasks.append(asyncio.create_task(self._level2(ws, products, counter)))
        await self.read_until_closed(ws, tasks)
        return ws

    def _parse_subscribe(self, msg: Any) -> tuple[list[str], list[str]] | str:
        if msg.type is not WSMsgType.TEXT:
            return "expected a subscribe message"
        try:
            body = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return "malformed JSON"
        if not isinstance(body, dict) or body.get("type") != "subscribe":
            return "Type has to be either subscribe or unsubscribe"
        products = list(body.get("product_ids") or [])
        channels: list[str] = []
        for channel in body.get("channels") or []:
            if isinstance(channel, dict):  # {"name": ..., "product_ids": [...]}
                channels.append(str(channel.get("name")))
                products.extend(p for p in channel.get("product_ids", []) if p not in products)
            else:
                channels.append(str(channel))
        for product in products:
            if product not in PRODUCTS:
                return f"{product} is not a valid product"
        if not products or not channels:
            return "No channels or product ids provided"
        return products, channels

    async def _heartbeats(self, ws: web.WebSocketResponse, products: list[str]) -> None:
        while not ws.closed:
            for product in products:
                existing = self.rest.existing(product)
                await ws.send_str(_dumps({
                    "type": "heartbeat",
                    "sequence": self._sequence[product],
                    "last_trade_id": existing[-1][0] if existing else 0,
                    "product_id": product,
                    "time": _iso(now_us()),
                }))
            await asyncio.sleep(self.heartbeat_s)

    def _match(self, product: str, row: tuple[int, int, float, float, bool], kind: str) -> str:
        trade_id, ts_us, price, amount, taker_buys = row
        self._sequence[product] += 1 + self._rng.randint(0, 3)  # other full-channel messages
        return _dumps({
            "type": kind,
            "trade_id": trade_id,
            "maker_order_id": f"{trade_id:08x}-maker",
            "taker_order_id": f"{trade_id:08x}-taker",
            "side": "sell" if taker_buys else "buy",  # the maker's side
            "size": f"{amount:.8f}",
            "price": f"{price:.2f}",
            "product_id": product,
            "sequence": self._sequence[product],
            "time": _iso(ts_us),
        })

    async def _matches(
        self, ws: web.WebSocketResponse, products: list[str], counter: dict[str, int]
    ) -> None:
        position = {}
        for product in products:
            existing = self.rest.existing(product)
            position[product] = len(existing)
            if existing and not await self.push(
                ws, self._match(product, existing[-1], "last_match"), counter
            ):
                return
        while not ws.closed:
            for product in products:
                existing = self.rest.existing(product)
                for row in self._new_rows(existing, position, product):
                    if self.skip_rate and self._rng.random() < self.skip_rate:
                        self.skipped.append(row[0])
                        continue
                    if not await self.push(ws, self._match(product, row, "match"), counter):
                        return
            await asyncio.sleep(0.002)

    @staticmethod
    def _new_rows(
        existing: list[tuple[int, int, float, float, bool]], position: dict[str, int], product: str
    ) -> Iterator[tuple[int, int, float, float, bool]]:
        while position[product] < len(existing):
            row = existing[position[product]]
            position[product] += 1
            yield row

    async def _level2(
        self, ws: web.WebSocketResponse, products: list[str], counter: dict[str, int]
    ) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        snapshots = []
        for product in products:  # snapshot and registration with no await in between
            book = self.books[product]
            bids, asks = book.top(_BOOK_LEVELS)
            snapshots.append(_dumps({
                "type": "snapshot",
                "product_id": product,
                "bids": [[f"{p:.2f}", f"{a:.8f}"] for p, a in bids],
                "asks": [[f"{p:.2f}", f"{a:.8f}"] for p, a in asks],
            }))
            self._book_subscribers[product].add(queue)
        self.start_market(self._step_books)
        try:
            if not await self.push_all(ws, snapshots, counter):
                return
            while not ws.closed:
                if not await self.push(ws, await queue.get(), counter):
                    return
        finally:
            for product in products:
                self._book_subscribers[product].discard(queue)

    async def _step_books(self) -> None:
        """The market: step every subscribed product's book, broadcast the changes."""
        while any(self._book_subscribers.values()):
            for product, queues in self._book_subscribers.items():
                if not queues:
                    continue
                _, changes = self._step(product)
                ts_us = self.book_stamp_us()
                self.book_history[product][ts_us] = self.books[product].top(_BOOK_LEVELS)
                text = _dumps({"type": "l2update", "product_id": product,
                               "changes": changes, "time": _iso(ts_us)})
                for queue in queues:
                    queue.put_nowait(text)
            await asyncio.sleep(self.book_interval_s)

    def app(self) -> web.Application:
        return self.ws_app(self.rest.app())
