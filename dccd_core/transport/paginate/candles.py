"""Candles paged by deterministic windows of ``page_limit`` bars.

The windows are fixed in advance, fetched concurrently (bounded in flight) and yielded
in order: a short or empty page just means the exchange has holes there; it never ends
the backfill early, and the number of requests is exactly the number of windows. Its
own module because none of the trade paging's cursor and continuity rules apply.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator

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

__all__ = ["paginate_candles"]


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
) -> AsyncGenerator[Chunk, None]:
    """Yield one ``Chunk`` per window, in order, fetching up to ``concurrency`` ahead."""
    limit = page_limit or source_page_limit(source, DataType.OHLC)
    windows = candle_windows(start_ts, end_ts, span, limit)
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
            pending.append((a, b, asyncio.ensure_future(source.fetch_candles(symbol, span, a, b))))
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
