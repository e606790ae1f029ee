"""Fetch a stream's missing stretch from REST: the trades or closed candles of a window.

Why its own module: a live stream loses data at every reconnect and at every silently
skipped frame; the stream asks this module for exactly the missing window and merges
the answer (duplicates are dropped on the natural key). Paging is the core's
paginators' job (``dccd_core.transport.paginate``); this only collects their chunks.
"""

from __future__ import annotations

import polars as pl

from dccd_core.domain import Span, Symbol
from dccd_core.sources.base import Source
from dccd_core.transport.paginate import PageStats, paginate_candles, paginate_trades

__all__ = ["fetch_candles_window", "fetch_trades_window"]


def _collect(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
    frames = [f for f in frames if f.height]
    return pl.concat(frames, how="vertical_relaxed") if frames else None


async def fetch_trades_window(
    source: Source, symbol: Symbol, start_ts: int, end_ts: int
) -> tuple[pl.DataFrame | None, int]:
    """All trades of ``[start_ts, end_ts)`` and the number of requests it took."""
    stats = PageStats()
    frames = [
        chunk.rows
        async for chunk in paginate_trades(
            source, symbol, start_ts, end_ts, concurrency=2, stats=stats
        )
    ]
    return _collect(frames), stats.requests


async def fetch_candles_window(
    source: Source, symbol: Symbol, span: Span, start_ts: int, end_ts: int
) -> tuple[pl.DataFrame | None, int]:
    """The bars opening in ``[start_ts, end_ts)`` (callers pass only closed bars)."""
    stats = PageStats()
    frames = [
        chunk.rows
        async for chunk in paginate_candles(
            source, symbol, span, start_ts, end_ts, concurrency=2, stats=stats
        )
    ]
    return _collect(frames), stats.requests
