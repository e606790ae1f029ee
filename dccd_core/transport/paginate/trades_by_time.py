"""Trades paged by the source's cursor over time segments, split adaptively.

A long window is split into segments drained concurrently, each by its own cursor,
until it reaches where the next one begins (rows clipped to the segment, so seams
neither lose nor duplicate same-millisecond trades); see the package docstring for
when a segment is split. Its own module: segments, their buffers and the page dedup
at a segment's boundary millisecond are only this mode's.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from dccd_core.domain import NS_PER_MS, Symbol

from ..pages import PageSource, TradePage
from .advance import Advance
from .chunks import Chunk, PageStats, cancel_all, clip_rows
from .id_checks import IdContinuity, IdOrder

__all__ = ["Segment", "dedup_page", "paginate_segments"]


@dataclass(eq=False)
class Segment:
    start: int
    end: int
    cursor: object | None = None
    pos_ts: int = 0
    pages: int = 0
    busy: bool = False
    done: bool = False
    buffer: collections.deque[Chunk] = field(default_factory=collections.deque)
    buffered_rows: int = 0
    tail_ts: int | None = None
    tail_ids: set[str] = field(default_factory=set)
    advance: Advance | None = None
    #: paging backward: the oldest ts of the window reached so far
    low_ts: int | None = None

    def __post_init__(self) -> None:
        self.pos_ts = self.start

    def done_ns(self) -> int:
        """How much of the segment's time its pages so far cover (either direction)."""
        if self.done:
            return self.end - self.start
        if self.low_ts is not None:
            return self.end - self.low_ts
        return self.pos_ts - self.start

    def remaining_pages(self) -> float:
        """Pages left, estimated from this segment's own pace (0 when unknown)."""
        if self.pages == 0 or self.pos_ts <= self.start or self.done:
            return 0.0
        return self.pages * (self.end - self.pos_ts) / (self.pos_ts - self.start)


def dedup_page(seg: Segment, rows: pl.DataFrame) -> pl.DataFrame:
    """Drop trades the segment already has: pages that overlap at the boundary ms.

    Rows are in time order; only rows at or before the last ms already seen can be
    repeats, so the common case (a page that starts later) costs no filtering.
    """
    if rows.height == 0:
        return rows
    ts = rows.get_column("ts")
    if seg.tail_ts is not None and int(ts[0]) <= seg.tail_ts:
        rows = rows.filter(~pl.col("trade_id").is_in(list(seg.tail_ids)))
        if rows.height == 0:
            return rows
        ts = rows.get_column("ts")
    ids = rows.get_column("trade_id")
    if ids.n_unique() != rows.height:
        rows = rows.unique(subset="trade_id", keep="first", maintain_order=True)
        ts, ids = rows.get_column("ts"), rows.get_column("trade_id")
    last_ts = int(ts[-1])
    if ts.is_sorted():
        first_at_last = int(np.searchsorted(ts.to_numpy(), last_ts, side="left"))
        tail = ids.slice(first_at_last).to_list()
    else:
        last_ts = int(ts.max())  # type: ignore[arg-type]
        tail = [i for i, t in zip(ids.to_list(), ts.to_list(), strict=True) if t == last_ts]
    if last_ts == seg.tail_ts:
        seg.tail_ids.update(tail)
    else:
        seg.tail_ts, seg.tail_ids = last_ts, set(tail)
    return rows


async def paginate_segments(
    source: PageSource,
    symbol: Symbol,
    start_ts: int,
    end_ts: int,
    forward: bool,
    concurrency: int,
    min_split_pages: int,
    max_buffer_rows: int,
    stats: PageStats,
) -> AsyncGenerator[Chunk, None]:
    """Time segments drained by cursor, split adaptively (see the module docstring)."""
    split_pages = max(1, min_split_pages)
    continuity = IdContinuity(source.id, symbol) if source.sequential_trade_ids else None
    order = IdOrder(source, symbol)
    segments: list[Segment] = [Segment(start_ts, end_ts)]
    finished_ns = 0  # time of the segments already yielded whole
    tasks: dict[asyncio.Task[TradePage], tuple[Segment, object]] = {}
    stats.segments = 1
    stats.windows_total = 1

    def launch(seg: Segment) -> None:
        seg.busy = True
        task = asyncio.ensure_future(
            source.fetch_trades_page(symbol, seg.start, seg.end, seg.cursor)
        )
        tasks[task] = (seg, seg.cursor)

    def absorb(seg: Segment, page: TradePage, asked: object) -> None:
        stats.requests += page.requests
        stats.pages += 1
        seg.pages += 1
        if seg.advance is None:
            seg.advance = Advance(source.id, symbol, forward)
        seg.advance.observe(asked, page, seg.start, seg.end)
        rows = page.rows
        reached_end = False
        if rows.height:
            max_ts = int(rows.get_column("ts").max())  # type: ignore[arg-type]
            reached_end = forward and max_ts >= seg.end
            if forward:
                seg.pos_ts = max(seg.pos_ts, min(max_ts, seg.end))
            else:
                min_ts = max(seg.start, int(rows.get_column("ts").min()))  # type: ignore[arg-type]
                if min_ts < seg.end:
                    seg.low_ts = min_ts if seg.low_ts is None else min(seg.low_ts, min_ts)
        rows = dedup_page(seg, clip_rows(rows, seg.start, seg.end))
        seg.cursor = page.next_cursor
        seg.done = page.next_cursor is None or reached_end
        covered = seg.end if seg.done else seg.pos_ts
        if rows.height or seg.done:
            seg.buffer.append(Chunk(rows, seg.start, covered))
            seg.buffered_rows += rows.height
        stats.done_ns = max(stats.done_ns, finished_ns + sum(s.done_ns() for s in segments))

    def may_fetch(index: int) -> bool:
        ahead = sum(s.buffered_rows for s in segments[1 : index + 1])
        return index == 0 or ahead < max_buffer_rows

    def split_one() -> Segment | None:
        """Carve about ``split_pages`` pages off the front of the farthest segment that
        still holds at least twice that (estimated from its own pace); the rest becomes a
        new segment that starts fetching now. Carving from the far end keeps the active
        segments adjacent, so the ones ahead of the committed position stay few."""
        if not forward:
            return None
        allowed = [i for i in range(len(segments)) if may_fetch(i)]
        for index in reversed(allowed):
            seg = segments[index]
            if seg.remaining_pages() < 2 * split_pages:
                continue
            ns_per_page = (seg.pos_ts - seg.start) / seg.pages
            cut = seg.pos_ts + int(split_pages * ns_per_page)
            cut -= cut % NS_PER_MS
            if seg.pos_ts < cut < seg.end:
                new = Segment(cut, seg.end)
                seg.end = cut
                segments.insert(index + 1, new)
                stats.segments += 1
                stats.windows_total += 1
                return new
        return None

    try:
        while segments:
            head = segments[0]
            while head.buffer:
                chunk = head.buffer.popleft()
                head.buffered_rows -= chunk.rows.height
                if continuity is not None:
                    continuity.check(chunk.rows)
                order.check(chunk.rows)
                stats.covered_until_ts = chunk.covered_until_ts
                yield chunk
            if head.done and not head.busy:
                segments.pop(0)
                finished_ns += head.end - head.start
                stats.windows_done += 1
                continue
            for index, seg in enumerate(segments):
                if len(tasks) >= concurrency:
                    break
                if not seg.busy and not seg.done and may_fetch(index):
                    launch(seg)
            while len(tasks) < concurrency and (new := split_one()) is not None:
                launch(new)
            if not tasks:  # the head is never done-and-idle here; guard against a bug
                raise RuntimeError("trade paginator stalled")
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                seg, asked = tasks.pop(task)
                seg.busy = False
                absorb(seg, task.result(), asked)
    finally:
        await cancel_all(tasks)
