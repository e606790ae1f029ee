"""Candles (and other time series: funding) paged by deterministic windows.

A window holds at most ``page_limit`` bars (for funding: ``page_limit`` of the shortest
funding interval, ``FUNDING_STEP``), so one request answers it whole, whichever way the
exchange orders its page. The windows are fixed in advance, fetched concurrently
(bounded in flight) and yielded in order: a short or empty page just means the
exchange has holes there; it never ends the backfill early, and the number of requests
is exactly the number of windows. Its own module because none of the trade paging's
cursor and continuity rules apply.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import polars as pl

from dccd_core.domain import DataType, Span, Symbol

from ..pages import PageSource
from .chunks import (
    AHEAD,
    DEFAULT_CONCURRENCY,
    Chunk,
    PageStats,
    cancel_all,
    candle_windows,
    clip_rows,
    source_page_limit,
)

__all__ = ["FUNDING_STEP", "paginate_candles", "paginate_funding", "paginate_windows"]

#: The shortest funding interval any exchange uses (1 h: Binance, Bybit and OKX move
#: volatile contracts to hourly funding): a window of ``page_limit`` hours can never
#: hold more than one page of funding rows.
FUNDING_STEP = Span.parse("1h")

#: one page of the rows in ``[a, b)``
WindowFetch = Callable[[int, int], Coroutine[Any, Any, pl.DataFrame]]


async def paginate_candles(
    source: PageSource,
    symbol: Symbol,
    span: Span,
    start_ts: int,
    end_ts: int,
    *,
    page_limit: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    stats: PageStats | None = None,
    data_type: DataType = DataType.OHLC,
) -> AsyncGenerator[Chunk, None]:
    """Yield one ``Chunk`` per window, in order, fetching up to ``concurrency`` ahead;
    ``data_type``: the candles (ohlc, mark or index)."""
    limit = page_limit or source_page_limit(source, data_type)
    page = source.fetch_candles if data_type is DataType.OHLC else source.span_page(data_type)

    async def fetch(a: int, b: int) -> pl.DataFrame:
        return await page(symbol, span, a, b)

    windows = candle_windows(start_ts, end_ts, span, limit)
    async for chunk in paginate_windows(fetch, windows, start_ts, concurrency, stats):
        yield chunk


async def paginate_funding(
    source: PageSource,
    symbol: Symbol,
    start_ts: int,
    end_ts: int,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    stats: PageStats | None = None,
) -> AsyncGenerator[Chunk, None]:
    """Funding rows of ``[start_ts, end_ts)`` by windows of ``page_limit`` hours."""
    limit = source_page_limit(source, DataType.FUNDING)

    async def fetch(a: int, b: int) -> pl.DataFrame:
        return await source.fetch_funding(symbol, a, b)

    step = limit * FUNDING_STEP.ns
    windows = [(a, min(a + step, end_ts)) for a in range(start_ts, end_ts, step)]
    async for chunk in paginate_windows(fetch, windows, start_ts, concurrency, stats):
        yield chunk


async def paginate_windows(
    fetch: WindowFetch,
    windows: list[tuple[int, int]],
    start_ts: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    stats: PageStats | None = None,
) -> AsyncGenerator[Chunk, None]:
    """One ``Chunk`` per window ``[a, b)`` (``fetch(a, b)`` answers it in one page), in
    order, up to ``concurrency`` requests in flight; rows clipped and deduplicated by ts."""
    stats = stats if stats is not None else PageStats()
    stats.windows_total = len(windows)
    pending: collections.deque[tuple[int, int, asyncio.Task[pl.DataFrame]]] = collections.deque()
    todo = iter(windows)

    slots = max(1, concurrency)

    def launch() -> None:
        # ``slots`` requests in flight; answered pages wait for their turn (at most
        # ``AHEAD`` x slots held), so one slow page does not idle the other slots
        running = sum(1 for _, _, t in pending if not t.done())
        while running < slots and len(pending) < AHEAD * slots:
            window = next(todo, None)
            if window is None:
                return
            a, b = window
            pending.append((a, b, asyncio.ensure_future(fetch(a, b))))
            stats.requests += 1
            running += 1

    try:
        launch()
        while pending:
            head = pending[0][2]
            if not head.done():
                running = [t for _, _, t in pending if not t.done()]
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                launch()
                continue
            a, b, task = pending.popleft()
            rows = task.result()
            launch()
            stats.pages += 1
            stats.windows_done += 1
            rows = clip_rows(rows, a, b)
            if rows.height > 1:
                rows = rows.unique(subset="ts", keep="last", maintain_order=True).sort("ts")
            stats.covered_until_ts = b
            stats.done_ns = max(stats.done_ns, b - start_ts)
            yield Chunk(rows, a, b)
    finally:
        await cancel_all(t for _, _, t in pending)
