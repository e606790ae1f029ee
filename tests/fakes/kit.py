"""The test side of the fake exchanges: a registry-built source on a served fake, a stream
through it, recorded payloads, the store's schemas.

``source_on(exchange, app)`` is the one way a test gets a source on a fake: it serves the
app, builds the source the way production does (``registry.build_source`` with the fake's
origin as REST and WS URL) and closes it with ``source.aclose()``, then stops the server.
The ``fake_source`` fixture (``tests/conftest.py``) is the same for a test's whole body.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import polars as pl
import pytest
from aiohttp import web

from dccd_core.domain import NS_PER_DAY, NS_PER_MS, DatasetKey, DataType, Symbol, now_ns, schema_for
from dccd_core.operations.backfill import BackfillResult, backfill
from dccd_core.operations.stream import FlushReport, stream
from dccd_core.sources.base import Endpoints, Source
from dccd_core.sources.registry import build_source
from dccd_core.storage import Store
from dccd_core.transport import HttpClient, WeightLimiter
from dccd_core.transport.ws import WsConfig
from tests.fakes.server import serve
from tests.fakes.ws import WsFake

__all__ = [
    "FAST_WS",
    "FIXTURES",
    "backfill_on",
    "checked_book_samples",
    "client_source",
    "fake_source_fixture",
    "fast_source_on",
    "feed",
    "fixture_loader",
    "open_limiter",
    "polars_schema",
    "recent_ms",
    "source_built_on",
    "source_on",
    "stream_on",
    "ws_origin",
]

SourceT = TypeVar("SourceT", bound=Source)

#: Reconnects on loopback need not wait like on the internet.
FAST_WS = WsConfig(backoff_base_s=0.02, backoff_cap_s=0.1, idle_timeout_s=5.0)
#: Recorded and documented payloads, one folder per exchange.
FIXTURES = Path(__file__).parents[1] / "fixtures"


def fixture_loader(exchange: str) -> Callable[[str], Any]:
    """``load(name)``: the parsed JSON of ``tests/fixtures/<exchange>/<name>``."""

    def load(name: str) -> Any:
        return json.loads((FIXTURES / exchange / name).read_text())

    return load


def polars_schema(data_type: DataType) -> pl.Schema:
    """The store's schema of ``data_type`` as polars sees it."""
    return pl.Schema(schema_for(data_type))


def ws_origin(origin: str) -> str:
    """The WebSocket origin of a fake served at ``origin`` (one server speaks both)."""
    return origin.replace("http", "ws")


def client_source(
    source_type: type[SourceT], exchange: str, **client: Any
) -> Callable[[str], SourceT]:
    """``origin -> source_type`` on a plain ``HttpClient(exchange, origin, **client)``: the
    test sets the client (no limiter unless given), not the registry."""

    def build(origin: str) -> SourceT:
        return source_type(HttpClient(exchange, origin, **client), Endpoints(origin))

    return build


def checked_book_samples(
    book: pl.DataFrame, truth_at: Callable[[int], Any], depth: int = 10
) -> int:
    """Assert each stored book snapshot (rows sharing a ``ts``) equals ``truth_at(ts)``,
    ``(bids, asks)`` of ``(price, amount)`` best first, in its top ``depth`` levels;
    ``truth_at`` returns None for a snapshot that has no truth to compare (stamped on
    receipt). Returns how many snapshots were compared."""
    checked = 0
    for (ts,), frame in book.group_by("ts"):
        truth = truth_at(int(ts))  # type: ignore[arg-type]
        if truth is None:
            continue
        checked += 1
        got_b = frame.filter(pl.col("side") == "bid").sort("level")
        got_a = frame.filter(pl.col("side") == "ask").sort("level")
        assert list(zip(got_b["price"], got_b["amount"], strict=True)) == truth[0][:depth]
        assert list(zip(got_a["price"], got_a["amount"], strict=True)) == truth[1][:depth]
    return checked


def fake_source_fixture(
    make_fake: Callable[[], Any],
    source: str | Callable[[str], Any],
    *,
    app: Callable[[Any], web.Application] | None = None,
    source_type: type | None = None,
) -> Any:
    """A pytest fixture giving ``(fake, source)``: ``make_fake()`` served (``app(fake)``,
    else ``fake.app()``) and a source on it, built as ``open_fake_source`` does and
    closed when the test ends; ``source_type``: the source must be one."""

    @pytest.fixture
    async def fake_and_source(open_fake_source: Any) -> tuple[Any, Any]:
        fake = make_fake()
        built = await open_fake_source(source, fake.app() if app is None else app(fake))
        if source_type is not None:
            assert isinstance(built, source_type)
        return fake, built

    return fake_and_source


def feed(source: Any, *frames: object) -> list[object]:
    """The events ``source`` parses from ``frames`` (text as is, anything else as JSON)."""
    events: list[object] = []
    for frame in frames:
        text = frame if isinstance(frame, str) else orjson.dumps(frame)
        events += source.parse_ws_message(text)
    return events


def open_limiter(source: Source, weight_per_minute: int = 10**9) -> Source:
    """Open ``source``'s request budget: pacing has its own tests, loopback need not wait."""
    source.http.limiter = WeightLimiter(weight_per_minute)  # type: ignore[attr-defined]
    return source


@contextlib.asynccontextmanager
async def source_built_on(app: web.Application, build: Callable[[str], Any]) -> AsyncIterator[Any]:
    """Serve ``app``; yield ``build(origin)``, a source; close it, then stop the server.

    For a source put together by hand (a test's own HTTP client or limiter);
    ``source_on`` is the registry's.
    """
    async with serve(app) as origin:
        source = build(origin)
        async with source:
            yield source


def fast_source_on(
    exchange: str, app: web.Application
) -> contextlib.AbstractAsyncContextManager[Any]:
    """``source_on`` with the request budget opened (``open_limiter``)."""
    return source_built_on(
        app, lambda origin: open_limiter(
            build_source(exchange, rest_url=origin, ws_url=ws_origin(origin))
        ),
    )


def recent_ms(days: int) -> tuple[int, int]:
    """``(first_ms, end_ms)``: the ``days`` days ending an hour ago (settled bars, samples)."""
    end_ms = now_ns() // NS_PER_MS - 3_600_000
    return end_ms - days * NS_PER_DAY // NS_PER_MS, end_ms


async def backfill_on(
    exchange: str, app: web.Application, key: DatasetKey, store: Store, **when: Any
) -> BackfillResult:
    """``backfill(key, **when)`` into ``store`` from a fast source on the served ``app``."""
    async with fast_source_on(exchange, app) as source:
        return await backfill(key, store=store, source=source, **when)


def source_on(exchange: str, app: web.Application) -> contextlib.AbstractAsyncContextManager[Any]:
    """Serve ``app``; yield the registry's source for ``exchange`` on it (REST and WS at
    the fake's origin); close both."""
    return source_built_on(
        app, lambda origin: build_source(exchange, rest_url=origin, ws_url=ws_origin(origin))
    )


async def stream_on(
    fake: WsFake,
    exchange: str,
    symbols: Sequence[str | Symbol],
    data_type: str,
    *,
    store: Store,
    prepare: Callable[[Any], object] | None = None,
    **options: Any,
) -> FlushReport:
    """``operations.stream`` through the registry's source on the served streaming
    ``fake`` (``FAST_WS`` unless ``options`` say otherwise); ``prepare(source)`` may tune
    the source first. The fake is stopped before its server shuts down."""
    options.setdefault("ws_config", FAST_WS)
    async with source_on(exchange, fake.app()) as source:  # type: ignore[attr-defined]
        if prepare is not None:
            prepare(source)
        try:
            return await stream(
                exchange, list(symbols), data_type, store=store, source=source, **options
            )
        finally:
            fake.stopped = True
