"""The commit loop of a backfill: chunks in order, committed in bounded pieces.

Rows are committed through ``store.writer`` in bounded chunks (a finished storage
period, ``store.commit_rows`` rows or ``store.commit_seconds``, whichever comes first),
never held whole; coverage is recorded after each commit, in order, and only up to
what was committed, including ranges where the exchange had no data. The paginator runs
ahead in its own task meanwhile. Its own module: this is the one place a backfill
writes.

When a run mixes sources (the archive planner), each chunk names its ``origin`` and a
commit's footer provenance says which sources its rows came from (``transport``
``archive``, ``rest`` or ``archive+rest``, and the ``archive_files``); a chunk marked
``after_hole`` restarts coverage at its ``start_ts``, so a window nobody fetched stays
a hole. ``after_commit(until_ts)`` runs after each commit that advanced coverage (the
planner records the archive files whose rows are now durable).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, Callable, Collection, Mapping

import polars as pl

from dccd_core.domain import DatasetKey
from dccd_core.storage import Store, WriteResult, period_of
from dccd_core.transport.paginate import Chunk

from .report import BackfillTracker

__all__ = ["commit_chunks", "provenance_of"]

#: chunks (about a page each) fetched ahead of the writer while it commits.
_PREFETCH_CHUNKS = 64
#: ... and at most about this many rows: an archive file's batches are tens of
#: thousands of rows each, and 64 of them would be a whole day of trades in memory
_PREFETCH_ROWS = 200_000
#: rows batched into one ``writer.add`` (fewer small polars operations per page).
_STAGE_ROWS = 20_000


def provenance_of(base: Mapping[str, str], origins: Collection[str]) -> dict[str, str]:
    """Footer provenance of rows from ``origins`` (``"rest"``, ``"archive:<file>"``);
    ``base`` alone when the chunks named none."""
    if not origins:
        return dict(base)
    files = sorted(o.split(":", 1)[1] for o in origins if o.startswith("archive:"))
    rest = any(not o.startswith("archive:") for o in origins)
    transport = "archive+rest" if files and rest else "archive" if files else "rest"
    out = {**base, "transport": transport}
    if files:
        out["archive_files"] = ",".join(files)
    return out


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _prefetch(
    chunks: AsyncGenerator[Chunk, None], depth: int, max_rows: int = _PREFETCH_ROWS
) -> AsyncGenerator[Chunk, None]:
    """Run the paginator in its own task, ``depth`` chunks (and about ``max_rows`` rows:
    a chunk is let in while fewer are queued) ahead of the writer, so pages keep
    arriving while a commit runs in a worker thread."""
    queue: asyncio.Queue[Chunk | _Failed | None] = asyncio.Queue(maxsize=depth)
    queued_rows = 0
    room = asyncio.Condition()

    def has_room() -> bool:
        return queued_rows < max_rows

    async def produce() -> None:
        nonlocal queued_rows
        try:
            async for chunk in chunks:
                async with room:
                    await room.wait_for(has_room)
                    queued_rows += chunk.rows.height
                await queue.put(chunk)
        except Exception as exc:  # handed to the consumer, raised there
            await queue.put(_Failed(exc))
            return
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, _Failed):
                raise item.error
            async with room:
                queued_rows -= item.rows.height
                room.notify_all()
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await chunks.aclose()


async def commit_chunks(
    key: DatasetKey,
    store: Store,
    chunks: AsyncGenerator[Chunk, None],
    run: BackfillTracker,
    provenance: dict[str, str],
    *,
    after_commit: Callable[[int], None] | None = None,
) -> WriteResult:
    """Write chunks in order; commit per finished period or bound; record coverage.

    Commits (merge-writes) run in a worker thread while the paginator keeps fetching.
    """
    commit_rows = store.commit_rows
    commit_s = store.commit_seconds
    committed_until = run.start_ts
    cover_from = run.start_ts  # where the covered stretch being extended begins
    origins: set[str] = set()  # of the buffered rows
    pending_until: int | None = None
    buffered = 0
    buffer_period: str | None = None
    last_commit = time.monotonic()
    # the writer never commits on its own: we commit, then record coverage
    with store.writer(
        key, provenance=provenance, commit_rows=2**62, commit_seconds=math.inf
    ) as writer:

        def commit_sync(until: int) -> None:
            if until > committed_until:  # recorded by the flush, once the rows are durable
                writer.cover(cover_from, until)
            writer.flush()

        def advanced() -> None:
            if after_commit is not None:
                after_commit(committed_until)

        staged: list[pl.DataFrame] = []  # pages batched before writer.add (less overhead)
        staged_rows = 0

        def unstage() -> None:
            nonlocal staged_rows
            if staged:
                writer.add(staged[0] if len(staged) == 1 else pl.concat(staged))
                staged.clear()
                staged_rows = 0

        async def commit() -> None:
            nonlocal committed_until, pending_until, buffered, buffer_period, last_commit
            if pending_until is None:
                return
            unstage()
            until = pending_until
            writer.set_provenance(provenance_of(provenance, origins))
            await asyncio.to_thread(commit_sync, until)
            committed_until = max(committed_until, until)
            pending_until, buffered, buffer_period = None, 0, None
            origins.clear()
            last_commit = time.monotonic()
            advanced()

        # aclosing: on a failed commit the prefetch task must stop *now*, not when the
        # generator is garbage-collected, or it keeps iterating the paginator.
        prefetched = contextlib.aclosing(_prefetch(chunks, _PREFETCH_CHUNKS))
        async with prefetched as ahead:
            async for chunk in ahead:
                if chunk.after_hole:  # what came before is committed; the hole stays one
                    await commit()
                    cover_from = committed_until = max(committed_until, chunk.start_ts)
                rows = chunk.rows
                run.rows += rows.height
                if rows.height:
                    first_period = period_of(key, int(rows.get_column("ts")[0]))
                    if buffer_period is not None and first_period != buffer_period and buffered:
                        await commit()  # a storage period is complete: write it once
                    staged.append(rows)
                    staged_rows += rows.height
                    if chunk.origin is not None:
                        origins.add(chunk.origin)
                    if staged_rows >= _STAGE_ROWS:
                        unstage()
                    buffered += rows.height
                    if buffer_period is None:
                        buffer_period = first_period
                    last_period = period_of(key, int(rows.get_column("ts")[-1]))
                    if last_period != buffer_period:
                        buffer_period = last_period
                pending_until = chunk.covered_until_ts
                if buffered >= commit_rows or time.monotonic() - last_commit >= commit_s:
                    await commit()
                elif buffered == 0 and pending_until - committed_until > 0:
                    # an empty stretch: coverage only, no file to write
                    writer.cover(cover_from, pending_until)
                    committed_until, pending_until = pending_until, None
                    advanced()
        await commit()
        return writer.result
