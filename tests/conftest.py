"""Fixtures shared by every test package."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.kit import source_on

#: ``await open_fake_source(exchange, app)`` -> a source on the served fake
OpenFakeSource = Callable[[str, web.Application], Awaitable[Any]]


@pytest.fixture
async def open_fake_source() -> AsyncIterator[OpenFakeSource]:
    """``source = await open_fake_source("bybit", make_app(fake))``: serve a fake, build
    the registry's source on it (REST and WS); when the test ends the source is closed
    (``source.aclose()``) and the fake stopped."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_source(exchange: str, app: web.Application) -> Any:
            return await stack.enter_async_context(source_on(exchange, app))

        yield open_source
