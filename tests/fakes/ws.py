"""The base of the streaming fakes: connections, network cuts, pings, one market task.

``WsFake`` counts connections, cuts one every ``drop_every`` pushes the way a network
does (``cut_connection``: no close frame), answers pings, runs one market task that
broadcasts to every subscriber, and stops it when the server is cleaned up. A streaming
fake subclasses it and writes only its frames.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.server import routes_app

__all__ = ["WsFake", "cut_connection", "ws_alive"]


def cut_connection(ws: web.WebSocketResponse) -> None:
    """Drop a WebSocket the way a network failure does: abort the TCP transport, so the
    client sees a broken connection, not a close frame."""
    transport = ws._req.transport if ws._req is not None else None
    if transport is not None:
        transport.abort()


def ws_alive(ws: web.WebSocketResponse) -> bool:
    """Whether ``ws`` can still carry a push (not closed, its TCP transport not closing)."""
    transport = ws._req.transport if ws._req is not None else None
    return not ws.closed and transport is not None and not transport.is_closing()


@dataclass
class WsFake:
    """The base of the streaming fakes (subclass it as a dataclass).

    ``drop_every``: cut the connection after every N pushes counted with ``cut_after``
    (0: never); ``connections``, ``drops`` and ``pings`` count what happened; a test sets
    ``stopped`` before its server shuts down so push loops end. ``start_market`` runs one
    market task (stepping books, broadcasting to subscribers) until ``ws_app``'s cleanup.
    """

    drop_every: int = 0
    connections: int = 0
    drops: int = 0
    pings: int = 0
    #: set by the test before the server shuts down: handler loops end
    stopped: bool = False
    _market: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def accept(self, request: web.Request) -> web.WebSocketResponse:
        """Complete the WebSocket handshake of ``request`` and count the connection."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        return ws

    def drop(self, ws: web.WebSocketResponse) -> None:
        """Cut ``ws`` the way a network failure does (no close frame) and count it."""
        self.drops += 1
        cut_connection(ws)

    def cut_after(self, ws: web.WebSocketResponse, pushes: int) -> bool:
        """After push number ``pushes`` on ``ws``: cut it if that is a ``drop_every``-th
        push. True when cut (the push loop ends)."""
        if self.drop_every and pushes % self.drop_every == 0:
            self.drop(ws)
            return True
        return False

    def running(self, ws: web.WebSocketResponse) -> bool:
        """Whether a push loop on ``ws`` goes on (the test has not stopped, ``ws`` alive)."""
        return not self.stopped and ws_alive(ws)

    async def answer_pings(
        self, ws: web.WebSocketResponse, is_ping: Callable[[str], bool], pong: str
    ) -> None:
        """Read ``ws`` until it closes (or a frame ``is_ping`` cannot read), answering
        each text frame that ``is_ping`` with ``pong``."""
        with contextlib.suppress(Exception):
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and is_ping(msg.data):
                    self.pings += 1
                    await ws.send_str(pong)

    async def push_all(
        self, ws: web.WebSocketResponse, texts: Sequence[str], counter: dict[str, int]
    ) -> bool:
        """``push`` each of ``texts``; False once the connection is cut."""
        for text in texts:
            if not await self.push(ws, text, counter):
                return False
        return True

    async def push(self, ws: web.WebSocketResponse, text: str, counter: dict[str, int]) -> bool:
        """Send ``text`` as one push counted in ``counter["sent"]`` (per connection);
        False once the connection is (or was just) cut."""
        if ws.closed:
            return False
        await ws.send_str(text)
        counter["sent"] += 1
        return not self.cut_after(ws, counter["sent"])

    async def push_answering_pings(
        self,
        ws: web.WebSocketResponse,
        pushes: Callable[[], Awaitable[None]],
        is_ping: Callable[[str], bool],
        pong: str,
    ) -> web.WebSocketResponse:
        """Run the connection's ``pushes`` while answering its pings (see
        ``answer_pings``); a connection cut under them just ends them."""
        reader = asyncio.create_task(self.answer_pings(ws, is_ping, pong))
        try:
            await pushes()
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return ws

    @staticmethod
    async def read_until_closed(
        ws: web.WebSocketResponse,
        tasks: list[asyncio.Task[Any]],
        on_text: Callable[[str], Awaitable[asyncio.Task[Any] | None]] | None = None,
    ) -> None:
        """Read ``ws`` until it closes (so the client's close and pings are seen), handing
        each text frame to ``on_text`` (a push task it starts joins ``tasks``); then
        cancel the connection's push ``tasks``."""
        try:
            async for msg in ws:
                if on_text is not None and msg.type is WSMsgType.TEXT:
                    task = await on_text(msg.data)
                    if task is not None:
                        tasks.append(task)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    def start_market(self, market: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``market()`` (the book stepper that feeds every subscriber) unless it runs."""
        if self._market is None or self._market.done():
            self._market = asyncio.create_task(market())

    async def _stop_market(self, app: web.Application) -> None:
        if self._market is not None:
            self._market.cancel()
            with contextlib.suppress(BaseException):
                await self._market

    def ws_app(self, app: web.Application | None = None) -> web.Application:
        """``app`` (or a new one) serving this fake's ``@get`` handlers too, its market
        stopped at cleanup."""
        app = routes_app(self, app=app)
        app.on_cleanup.append(self._stop_market)
        return app
