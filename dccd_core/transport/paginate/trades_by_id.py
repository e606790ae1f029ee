"""Trades of sources with consecutive ids that can address a page by id (Binance ``fromId``).

After the window's first page (found by time), blocks of exactly one page of ids are
fetched concurrently and yielded in order, like candle windows: no seam costs a
request, and a page reaching ``end_ts`` or coming back short (the newest trade) ends
the window. Its own module: the look-ahead estimate and the id arithmetic are only
this mode's.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import AsyncGenerator, Callable

import polars as pl

from dccd_core.domain import Symbol

from ..pages import PageSource, TradePage
from .advance import Advance
from .chunks import AHEAD, Chunk, PageStats, cancel_all, clip_rows
from .id_checks import IdContinuity, IdOrder, Replays

__all__ = ["paginate_by_id"]


async def paginate_by_id(
    source: PageSource,
    symbol: Symbol,
    start_ts: int,
    end_ts: int,
    cursor_at: Callable[[int], object],
    limit: int,
    concurrency: int,
    stats: PageStats,
) -> AsyncGenerator[Chunk, None]:
    """First page by time (following the source's cursor over quiet stretches), then
    blocks of ``limit`` ids from the next id on, up to ``concurrency`` in flight (fewer
    when the estimated rest of the window is shorter), yielded in order, until a page
    reaches ``end_ts`` or comes back short (the newest trade)."""
    continuity = IdContinuity(source.id, symbol)
    order = IdOrder(source, symbol)
    replays = Replays(source, symbol)
    advance = Advance(source.id, symbol, forward=True)
    stats.segments = stats.windows_total = 1

    def count(asked: object | None, page: TradePage) -> None:
        stats.requests += page.requests
        stats.pages += 1
        advance.observe(asked, page, start_ts, end_ts)

    def take(page: TradePage) -> tuple[pl.DataFrame, pl.DataFrame, tuple[str, ...]]:
        """The page without replays: as sent, clipped to the window, the replayed ids."""
        raw, replayed = replays.apply(page)
        stats.replayed += len(replayed)
        return raw, clip_rows(raw, start_ts, end_ts), replayed

    def settle(rows: pl.DataFrame, replayed: tuple[str, ...], last_ts: int, done: bool) -> Chunk:
        """Check the rows against the pages before, record how far the walk is."""
        continuity.check(rows, replayed)
        order.check(rows)
        stats.covered_until_ts = end_ts if done else max(start_ts, last_ts)
        stats.done_ns = stats.covered_until_ts - start_ts
        if done:
            stats.windows_done = 1
        return Chunk(rows, start_ts, stats.covered_until_ts)

    cursor: object | None = None
    while True:  # the first rows of the window, by time
        page = await source.fetch_trades_page(symbol, start_ts, end_ts, cursor)
        count(cursor, page)
        if page.rows.height or page.next_cursor is None:
            break
        cursor = page.next_cursor
    raw, rows, replayed = take(page)
    last_ts = int(raw.get_column("ts")[-1]) if raw.height else end_ts
    done = page.next_cursor is None or last_ts >= end_ts
    yield settle(rows, replayed, last_ts, done)
    if done:
        return
    next_id = max(int(i) for i in (*raw.get_column("trade_id").to_list()[-1:], *replayed)) + 1
    first_ts = int(raw.get_column("ts")[0])
    seen = raw.height
    pending: collections.deque[tuple[object, asyncio.Task[TradePage]]] = collections.deque()

    slots = max(1, concurrency)

    def wanted() -> int:
        """Pages worth requesting after the last one yielded: the estimated rest of the
        window plus one (so a short estimate costs a round trip, not a lost page)."""
        span_ns = last_ts - first_ts
        if span_ns <= 0:
            return AHEAD * slots
        rest_pages = (end_ts - last_ts) * seen / span_ns / limit
        return max(1, min(AHEAD * slots, math.ceil(rest_pages * 1.2) + 1))

    def launch() -> None:
        nonlocal next_id
        running = sum(1 for _, t in pending if not t.done())
        want = wanted()
        while running < slots and len(pending) < want:
            asked = cursor_at(next_id)
            task = asyncio.ensure_future(source.fetch_trades_page(symbol, start_ts, end_ts, asked))
            pending.append((asked, task))
            next_id += limit
            running += 1

    try:
        launch()
        while pending:
            if not pending[0][1].done():
                running = [t for _, t in pending if not t.done()]
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                launch()
                continue
            asked, task = pending.popleft()
            page = task.result()
            count(asked, page)
            raw, rows, replayed = take(page)
            sent = page.rows.height + len(page.replayed)  # a dropped replay was sent
            if raw.height:
                last_ts = max(last_ts, int(raw.get_column("ts")[-1]))
            seen += sent
            done = sent < limit or last_ts >= end_ts or page.next_cursor is None
            yield settle(rows, replayed, last_ts, done)
            if done:
                return
            launch()
    finally:
        # pages fetched ahead of the end: answered, so they were requests
        stats.requests += sum(
            t.result().requests
            for _, t in pending
            if t.done() and not t.cancelled() and t.exception() is None
        )
        await cancel_all(t for _, t in pending)
