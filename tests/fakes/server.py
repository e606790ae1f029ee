"""The server side every fake exchange shares: serving, replies, faults, WebSocket feeds.

A fake is only its wire format (routes and payload shapes); what is not the exchange's
own lives here:

``serve(app)`` yields the origin (``http://127.0.0.1:PORT``) to point a source at;
``routes_app`` builds an app from a path -> handler table; ``json_reply`` writes a body
the way exchanges do (compact JSON).
``FaultInjector`` is an aiohttp middleware: a seeded share of requests gets a 5xx,
a reset connection, a truncated body or a slow reply, so a test can demand the store
equal a clean run's. Its ``exchange`` kind answers with one of ``replies``, the
exchange's own documented error bodies (each fake module lists its ``ERROR_REPLIES``);
``with_faults(app, injector)`` puts an injector in front of any fake's app.
``WsFake`` is the base of the streaming fakes: connection counting, a network cut every
``drop_every`` pushes, ping answers, one market task broadcasting to subscribers, and
cleanup when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import WSMsgType, web

__all__ = [
    "ErrorReply",
    "FaultInjector",
    "Refusal",
    "WsFake",
    "answer_refusals",
    "cut_connection",
    "exchange_faults",
    "get",
    "json_reply",
    "query_ints",
    "routes_app",
    "routes_of",
    "serve",
    "serve_in_thread",
    "with_faults",
    "ws_alive",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HandlerT = TypeVar("HandlerT", bound=Callable[..., Awaitable[web.StreamResponse]])


def json_reply(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``data`` as a compact JSON body (orjson, as exchanges send it), with ``headers``."""
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers=dict(headers) if headers else None,
    )


class Refusal(Exception):
    """Raised anywhere in a fake's handler to answer ``response``: the exchange refusing
    the request (unknown symbol, bad parameter), so handlers need no early returns."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@web.middleware
async def answer_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The middleware turning a ``Refusal`` into its response (``routes_app`` adds it)."""
    try:
        return await handler(request)
    except Refusal as refusal:
        return refusal.response


def query_ints(
    request: web.Request, defaults: Mapping[str, int | None], refusal: web.Response
) -> list[int | None]:
    """The integer query parameters named in ``defaults`` (their default when absent);
    a parameter that is no integer is refused with ``refusal``."""
    try:
        return [
            int(request.query[name]) if name in request.query else default
            for name, default in defaults.items()
        ]
    except ValueError:
        raise Refusal(refusal) from None


def get(*paths: str) -> Callable[[HandlerT], HandlerT]:
    """Mark a fake's handler method as the GET handler of ``paths`` (its wire address):
    ``routes_app(fake)`` serves every method so marked."""

    def mark(handler: HandlerT) -> HandlerT:
        handler.get_paths = (*getattr(handler, "get_paths", ()), *paths)  # type: ignore[attr-defined]
        return handler

    return mark


def routes_of(fake: object) -> dict[str, Handler]:
    """Path -> bound handler for every method of ``fake`` marked with ``@get``."""
    routes: dict[str, Handler] = {}
    for name in dir(type(fake)):
        for path in getattr(getattr(type(fake), name), "get_paths", ()):
            routes[path] = getattr(fake, name)
    return routes


def routes_app(
    fake: object,
    *,
    app: web.Application | None = None,
    middlewares: Sequence[Any] = (),
) -> web.Application:
    """``app`` (a new one with ``middlewares`` if None) serving ``fake``'s ``@get``
    handlers (or ``fake`` itself if it is a path -> handler mapping)."""
    app = web.Application(middlewares=[*middlewares, answer_refusals]) if app is None else app
    routes = fake if isinstance(fake, Mapping) else routes_of(fake)
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return app


@dataclass(frozen=True)
class ErrorReply:
    """One real error reply of an exchange: status, JSON body (or raw text), headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        if isinstance(self.body, str):  # an HTML page from a gateway, say
            return web.Response(status=self.status, text=self.body, headers=dict(self.headers))
        return json_reply(self.body, self.status, self.headers)


@dataclass
class FaultInjector:
    """Seeded fault injection; ``rate`` is the share of requests that misbehave.

    ``kinds`` among: "500", "502", "503", "reset", "truncate", "slow", and "exchange"
    (one of ``replies``, chosen by the same seeded generator).
    ``latency_s`` is added to every reply (to model a far exchange).
    """

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = ("500", "502", "503", "reset", "truncate", "slow")
    latency_s: float = 0.0
    slow_s: float = 0.3
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    replies: Sequence[ErrorReply] = ()

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.rate and self._rng.random() < self.rate:
            kind = self._rng.choice(self.kinds)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == "exchange":
                return self._rng.choice(list(self.replies)).response()
            if kind in ("500", "502", "503"):
                return web.Response(status=int(kind), text="<html>upstream error</html>")
            if kind == "reset":
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("injected reset")
            if kind == "slow":
                await asyncio.sleep(self.slow_s)
            if kind == "truncate":
                response = await handler(request)
                body = getattr(response, "body", None) or b""
                if isinstance(body, bytes | bytearray) and len(body) > 2:
                    return web.Response(
                        body=bytes(body[: len(body) // 2]),
                        status=response.status,
                        content_type="application/json",
                    )
                return response
        return await handler(request)


def exchange_faults(replies: Sequence[ErrorReply], rate: float, seed: int = 0) -> FaultInjector:
    """An injector answering a seeded ``rate`` of requests with the exchange's own
    error ``replies`` (e.g. ``tests.fakes.binance.ERROR_REPLIES``)."""
    if not replies:
        raise ValueError("exchange_faults needs at least one reply")
    return FaultInjector(rate=rate, seed=seed, kinds=("exchange",), replies=tuple(replies))


def with_faults(app: web.Application, faults: FaultInjector) -> web.Application:
    """Put ``faults`` in front of every other middleware of ``app`` (before it starts)."""
    app.middlewares.insert(0, faults.middleware)
    return app


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


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Start ``app`` on a free loopback port; yield its origin; stop it afterwards."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serve_in_thread(app_factory: Callable[[], web.Application]):  # type: ignore[no-untyped-def]
    """Run an app in a background thread's event loop, for sync callers (Dagster, CLI).

    Yields the origin. ``app_factory`` is called inside the thread's loop.
    """
    import threading

    ready: dict[str, str] = {}
    started = threading.Event()
    stop: dict[str, asyncio.Event] = {}
    loop_holder: dict[str, asyncio.AbstractEventLoop] = {}

    async def main() -> None:
        stop["event"] = asyncio.Event()
        loop_holder["loop"] = asyncio.get_running_loop()
        async with serve(app_factory()) as origin:
            ready["origin"] = origin
            started.set()
            await stop["event"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("fake server did not start")
    try:
        yield ready["origin"]
    finally:
        loop_holder["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(10)
