"""Paginators: turn a source's page methods into an ordered stream of complete chunks.

Paging lives here once, not in the sources (see ``dccd_core.sources.base``). The
paginators hold no store: they yield ``Chunk``s in time order and the caller commits
them, recording coverage up to ``chunk.covered_until_ts`` once a chunk is written.

Candles are paged by *deterministic* windows of ``page_limit`` bars, fetched
concurrently (bounded in-flight) and yielded in order. Because the windows are fixed
in advance, a short or empty page just means the exchange has holes there; it never
ends the backfill early, and the number of requests is exactly the number of windows.

Trades from a source with consecutive ids that can address a page by id
(``cursor_at_trade_id``, Binance ``fromId``) are paged in blocks of exactly one page of
ids after the window's first (by time) page, fetched concurrently and yielded in
order, like candle windows: no seam costs a request, and a page reaching ``end_ts``
or coming back short (the newest trade) ends the window.

Other sources' trades are paged by the source's cursor. A long window is split into time segments
that are drained concurrently, each by its own cursor, until it reaches where the
next one begins (rows clipped to the segment, so seams neither lose nor duplicate
same-millisecond trades). Segments are split adaptively, only when one is estimated
(from its own pages) to hold at least ``2 * min_split_pages`` pages: each seam costs
at most one extra page, so the requests stay within ~1/min_split_pages of the
minimum. Only the source's cursor (``next_cursor=None``) or, for forward paging, a
row at or past the segment's end, ends a segment: an empty page never does. Where
``source.sequential_trade_ids``, ids must be consecutive across every seam and page;
a gap raises ``UnexpectedPayload`` rather than silently losing trades.

Every trade walk ends, whatever the exchange answers: a page must bring a trade of the
window past the walk's frontier, or be empty with a cursor not asked since the walk
last moved. A cursor that comes back raises ``PagingStalled`` at once; pages that hold
trades but none new (the same page again, pages dated outside the window) raise it after
``MAX_IDLE_PAGES`` in a row. Candle windows are fixed in advance, so they always end.

The package keeps one module per concern: ``chunks`` (what all paging shares),
``candles``, ``trades_by_id``, ``trades_by_time`` (the three paging modes) and the
checks every trade walk runs, ``advance`` (it ends) and ``id_checks`` (no gap, replay
or order reversal across pages). This module picks the trade paging mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from dccd_core.domain import DataType, PageDirection, Symbol

from ..pages import IdAddressedPages, PageSource
from .advance import MAX_IDLE_PAGES
from .candles import FUNDING_STEP, paginate_candles, paginate_funding, paginate_windows
from .chunks import (
    DEFAULT_CONCURRENCY,
    Chunk,
    PageStats,
    candle_windows,
    clip_rows,
    source_page_limit,
)
from .id_checks import Replays as _Replays  # noqa: F401  (tests import it from here)
from .trades_by_id import paginate_by_id
from .trades_by_time import paginate_segments

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FUNDING_STEP",
    "MAX_IDLE_PAGES",
    "Chunk",
    "PageStats",
    "candle_windows",
    "clip_rows",
    "paginate_candles",
    "paginate_funding",
    "paginate_trades",
    "paginate_windows",
]


async def paginate_trades(
    source: PageSource,
    symbol: Symbol,
    start_ts: int,
    end_ts: int,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    min_split_pages: int = 64,
    max_buffer_rows: int = 500_000,
    stats: PageStats | None = None,
) -> AsyncGenerator[Chunk, None]:
    """Yield the trades of ``[start_ts, end_ts)`` in order, as chunks of about a page.

    Sources with consecutive trade ids that can address a page by id (a
    ``cursor_at_trade_id(trade_id)`` method, e.g. Binance ``fromId``) are paged in id
    blocks of exactly one page, fetched concurrently like candle windows: no seam costs
    a request. Other sources are paged by time segments (see the module docstring).
    ``max_buffer_rows`` bounds the rows held ahead of the committed position (segments
    far ahead of the first one pause), so memory does not grow with the window.
    """
    stats = stats if stats is not None else PageStats()
    feature = source.capability.feature(DataType.TRADES)
    forward = feature is None or feature.direction is PageDirection.FORWARD
    walk: AsyncGenerator[Chunk, None]
    if forward and source.sequential_trade_ids and isinstance(source, IdAddressedPages):
        limit = source_page_limit(source, DataType.TRADES)
        walk = paginate_by_id(
            source, symbol, start_ts, end_ts, source.cursor_at_trade_id, limit, concurrency, stats
        )
    else:
        walk = paginate_segments(
            source,
            symbol,
            start_ts,
            end_ts,
            forward,
            concurrency,
            min_split_pages,
            max_buffer_rows,
            stats,
        )
    async with contextlib.aclosing(walk):
        async for chunk in walk:
            yield chunk
