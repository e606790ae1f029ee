"""The server side every fake exchange shares: serving, replies, faults, WebSocket feeds.

A fake is only its wire format (routes and payload shapes); what is not the exchange's
own lives here:

``serve(app)`` yields the origin (``http://127.0.0.1:PORT``) to point a source at;
``routes_app(fake)`` serves the handlers a fake marks with ``@get(path)``; ``json_reply``
writes a body the way exchanges do (compact JSON); a handler refuses a request by raising
``Refusal(reply)`` (the exchange's own error body) from wherever it finds the fault.
``FaultInjector`` is an aiohttp middleware: a seeded share of requests gets a 5xx,
a reset connection, a truncated body or a slow reply, so a test can demand the store
equal a clean run's. Its ``exchange`` kind answers with one of ``replies``, the
exchange's own documented error bodies (each fake module lists its ``ERROR_REPLIES``);
``with_faults(app, injector)`` puts an injector in front of any fake's app.
The streaming fakes' base (``WsFake``) is in ``tests.fakes.ws``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web

__all__ = [
    "OPEN_END",
    "ErrorReply",
    "FaultInjector",
    "Refusal",
    "SeriesFake",
    "answer_refusals",
    "exchange_faults",
    "get",
    "json_reply",
    "newest_first",
    "query_ints",
    "routes_app",
    "routes_of",
    "serve",
    "serve_in_thread",
    "with_faults",
    "within",
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


#: The open upper bound of a series window the request leaves open.
OPEN_END = 2**62


@dataclass
class SeriesFake:
    """The base of a fake derivatives-history endpoint (funding, mark/index candles,
    open interest): one fixed-time window a request. ``requests`` keeps every query
    (a test asserts what was, or was not, asked)."""

    requests: list[dict[str, str]] = field(default_factory=list, kw_only=True)

    def window_query(
        self,
        request: web.Request,
        instrument: Mapping[str, str],
        unknown: web.Response,
        ints: Mapping[str, int | None],
        bad: web.Response,
    ) -> list[int | None]:
        """The start every handler shares: record the query, refuse a request for
        another instrument than ``instrument`` with ``unknown``, and read the integer
        parameters ``ints`` (their default when absent; not an integer: ``bad``)."""
        self.requests.append(dict(request.query))
        if any(request.query.get(name) != value for name, value in instrument.items()):
            raise Refusal(unknown)
        return query_ints(request, ints, bad)


def within(lo_ms: int | None, hi_ms: int | None) -> tuple[int, int]:
    """Inclusive window bounds where an absent bound leaves that side open."""
    return (lo_ms or 0, hi_ms if hi_ms is not None else OPEN_END)


def newest_first(rows: Sequence[Any], limit: int) -> list[Any]:
    """The newest ``limit`` of ``rows`` (oldest first), newest first: the page of an
    exchange that serves the latest rows up to the window end."""
    return list(reversed(rows))[:limit]


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
