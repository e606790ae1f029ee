"""What every paginator shares: the ``Chunk`` it yields, the ``PageStats`` it keeps,
window arithmetic and clipping, and the cancelling of look-ahead pages.

Its own module so the three paging modes (candles, trades by id, trades by time) can
each live in a file of one concern and still agree on these few shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from dccd_core.domain import DataType, Span

from ..pages import PageSource

__all__ = [
    "AHEAD",
    "DEFAULT_CONCURRENCY",
    "Chunk",
    "PageStats",
    "cancel_all",
    "candle_windows",
    "clip_rows",
    "source_page_limit",
]

DEFAULT_CONCURRENCY = 6
DEFAULT_PAGE_LIMIT = 500
#: answered pages held waiting for an earlier one, per request slot
AHEAD = 4


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows in time order; every row of ``[start_ts, covered_until_ts)`` is in this chunk
    or an earlier one, so coverage may be recorded up to ``covered_until_ts`` once it is
    committed. ``rows`` may be empty (a quiet range is still a covered range)."""

    rows: pl.DataFrame
    start_ts: int
    covered_until_ts: int
    #: where the rows came from when one run mixes sources (the backfill planner:
    #: ``"rest"`` or ``"archive:<file name>"``), for the footer provenance; None: the
    #: run's own provenance
    origin: str | None = None
    #: ``[previous chunk's covered_until_ts, start_ts)`` was *not* fetched (an archive
    #: file that could not be used under ``archives: only``): coverage restarts here
    after_hole: bool = False


@dataclass(slots=True)
class PageStats:
    """What a paginator did so far (read by progress reports)."""

    requests: int = 0
    pages: int = 0
    windows_total: int = 0
    windows_done: int = 0
    segments: int = 0
    covered_until_ts: int | None = None
    #: how much of the window's time the pages fetched so far cover (ns), whichever
    #: way it is paged (backward paging covers ``[x, end)``, not a prefix)
    done_ns: int = 0
    #: rows dropped as replays of trades already delivered (``TradePage.replayed``)
    replayed: int = 0


def candle_windows(
    start_ts: int, end_ts: int, span: Span, page_limit: int
) -> list[tuple[int, int]]:
    """Windows ``[a, b)`` of at most ``page_limit`` bars covering the bars opening in
    ``[start_ts, end_ts)``; the first starts at the first bar open >= ``start_ts``."""
    if page_limit <= 0:
        raise ValueError("page_limit must be positive")
    floor = span.floor(start_ts)
    first = floor if floor == start_ts else floor + span.ns
    step = page_limit * span.ns
    return [(a, min(a + step, end_ts)) for a in range(first, end_ts, step)]


def clip_rows(rows: pl.DataFrame, start_ts: int, end_ts: int) -> pl.DataFrame:
    """The rows with ``start_ts <= ts < end_ts`` (a slice when ``ts`` is sorted)."""
    if rows.height == 0:
        return rows
    ts = rows.get_column("ts")
    if ts.is_sorted():
        if ts[0] >= start_ts and ts[-1] < end_ts:
            return rows
        values = ts.to_numpy()
        lo = int(np.searchsorted(values, start_ts, side="left"))
        hi = int(np.searchsorted(values, end_ts, side="left"))
        return rows.slice(lo, max(0, hi - lo))
    return rows.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))


def source_page_limit(source: PageSource, data_type: DataType) -> int:
    feature = source.capability.feature(data_type)
    if feature is not None and feature.page_limit:
        return feature.page_limit
    return DEFAULT_PAGE_LIMIT


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel the page tasks still running and collect *every* task's outcome, the
    finished ones too: a look-ahead page that failed while an earlier one was being
    raised must not surface later as "Task exception was never retrieved"."""
    every = list(tasks)
    for task in every:
        if not task.done():
            task.cancel()
    if every:
        await asyncio.gather(*every, return_exceptions=True)
