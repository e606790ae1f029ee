"""Fixtures shared by every test package."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.kit import source_built_on, source_on

#: ``await open_fake_source(source, app)`` -> a source on the served fake ``app``;
#: ``source`` is an exchange id (the registry's source) or ``origin -> Source``
OpenFakeSource = Callable[[str | Callable[[str], Any], web.Application], Awaitable[Any]]


@pytest.fixture
async def open_fake_source() -> AsyncIterator[OpenFakeSource]:
    """``source = await open_fake_source("bybit", make_app(fake))``: serve a fake and build
    a source on it: the registry's (REST and WS at the fake) for an exchange id, or
    ``build(origin)``'s. When the test ends the source is closed (``source.aclose()``)
    and the fake stopped."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_source(source: str | Callable[[str], Any], app: web.Application) -> Any:
            served = source_on(source, app) if isinstance(source, str) else source_built_on(
                app, source
            )
            return await stack.enter_async_context(served)

        yield open_source
