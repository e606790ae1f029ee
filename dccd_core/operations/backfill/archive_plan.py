"""The archive-first planner: one ordered ``Chunk`` stream from bulk files and REST.

For ``[start_ts, end_ts)`` it walks the files the reader plans (monthly files for
closed months, then daily files for closed days) and fetches over REST whatever no
file holds (the recent tail, or a stretch between files). A file that raises
``ArchiveUnavailable`` (missing, checksum mismatch, truncated, implausible) is
replaced by REST for exactly the part of its window not read yet: the rows already
yielded from it stay, and coverage only reaches as far as they are complete. Under
``archives: only`` nothing goes to REST, and under ``auto`` nothing older than REST's
history (``rest_from_ts``: Bybit keeps only its latest trades) does: such a window is
left uncovered (a hole the checks report), the chunk after it says so
(``Chunk.after_hole``) and the run's result lists it, so the run never looks complete
when it is not.

Everything downstream is the commit loop's usual job (bounded commits, ordered
coverage); each chunk names its origin (``"rest"`` or ``"archive:<file>"``) for the
footer provenance. A trade keeps its ``trade_id`` whichever source delivered it and a
candle its open time, so where a fallback re-fetches the rows at the seam the store's
natural-key dedup keeps each once. A file read to its end is recorded in the dataset's
archive ledger (``storage.archive_ledger``) once its rows are committed
(``committed``).

Files are read ``LOOKAHEAD_FILES`` ahead (each in its own task, a few batches
buffered), so the next file's download (a round trip for its checksum, one for the
file) overlaps the decoding and committing of the current one; rows still come out in
file order, and memory stays bounded by the buffered batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import polars as pl

from dccd_core.domain import DatasetKey, TransportError, iso_datetime
from dccd_core.sources.archives.base import (
    ArchiveFile,
    ArchiveReader,
    ArchiveUnavailable,
    IngestedFile,
)
from dccd_core.sources.archives.mode import ArchiveMode
from dccd_core.storage.archive_ledger import LedgerEntry
from dccd_core.transport.paginate import Chunk, PageStats, clip_rows

from .report import ArchiveFallback, BackfillTracker

__all__ = ["ARCHIVE_ORIGIN_PREFIX", "REST_ORIGIN", "ArchivePlanner", "RestChunks"]

log = logging.getLogger("dccd.backfill")

REST_ORIGIN = "rest"
ARCHIVE_ORIGIN_PREFIX = "archive:"

#: ``rest_chunks(start_ts, end_ts, stats)``: the REST paginator of a window
RestChunks = Callable[[int, int, PageStats], AsyncGenerator[Chunk, None]]

#: files read ahead of the one being consumed (their downloads overlap its decoding);
#: each holds a temp file (a month of a busy pair's trades: hundreds of MB on disk)
LOOKAHEAD_FILES = 1
#: batches buffered per file read ahead
_BUFFERED_BATCHES = 4


@dataclass(frozen=True, slots=True)
class _End:
    """A file read to its end (``ingested``), or refused (``failure``, a reason)."""

    ingested: IngestedFile | None = None
    failure: str | None = None


class _FileRead:
    """One file read in its own task into a small queue: batches, then an ``_End``."""

    def __init__(self, reader: ArchiveReader, key: DatasetKey, file: ArchiveFile) -> None:
        self.file = file
        self.queue: asyncio.Queue[pl.DataFrame | _End | BaseException] = asyncio.Queue(
            _BUFFERED_BATCHES
        )
        self.task = asyncio.create_task(self._run(reader, key))

    async def _run(self, reader: ArchiveReader, key: DatasetKey) -> None:
        try:
            async with reader.read(key, self.file) as read:
                async for batch in read:
                    await self.queue.put(batch)
            await self.queue.put(_End(ingested=read.ingested))
        except ArchiveUnavailable as exc:
            await self.queue.put(_End(failure=exc.reason))
        except TransportError as exc:  # a download that failed after its retries
            await self.queue.put(_End(failure=f"download failed: {exc}"))
        except Exception as exc:  # handed to the consumer, raised there
            await self.queue.put(exc)

    async def items(self) -> AsyncIterator[pl.DataFrame | _End]:
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, _End):
                return

    async def cancel(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class ArchivePlanner:
    """One backfill's plan over ``run``'s ``[start_ts, end_ts)``; ``chunks()`` once."""

    def __init__(
        self,
        key: DatasetKey,
        reader: ArchiveReader,
        mode: ArchiveMode,
        run: BackfillTracker,
        now_ts: int,
        rest_chunks: RestChunks,
        rest_from_ts: int | None = None,
        rest_gap: str = "",
        ready: Awaitable[None] | None = None,
    ) -> None:
        """``rest_from_ts``: the oldest ts REST can page back to (None: all history);
        ``rest_gap``: why (and what instead), for the log of a window left uncovered;
        ``ready``: a check still under way (the symbol's): the first files' downloads
        start meanwhile, but no chunk is yielded and no REST request made before it
        passes (its error ends the run)."""
        if mode is ArchiveMode.OFF:
            raise ValueError("the archive planner is not used with archives: off")
        self.key = key
        self.reader = reader
        self.mode = mode
        self.run = run
        self.now_ts = now_ts
        self._rest_chunks = rest_chunks
        self.rest_from_ts = rest_from_ts
        self.rest_gap = rest_gap
        self._ready = ready
        self._hole = False  # the next chunk follows a window left uncovered
        #: files read to their end, waiting for their rows to be committed
        self._pending: list[tuple[int, LedgerEntry]] = []

    # -- the plan ------------------------------------------------------------------

    def plan(self) -> list[tuple[ArchiveFile, int, int]]:
        """The planned files clipped to the run's window: ``(file, a, b)`` in order."""
        start, end = self.run.start_ts, self.run.end_ts
        planned = self.reader.plan_files(self.key, start, end, self.now_ts)
        out: list[tuple[ArchiveFile, int, int]] = []
        for file in sorted(planned, key=lambda f: f.start_ts):
            a, b = max(file.start_ts, start), min(file.end_ts, end)
            if b > a and (not out or a >= out[-1][2]):
                out.append((file, a, b))
        return out

    async def chunks(self) -> AsyncGenerator[Chunk, None]:
        """Every chunk of the window in time order: files, REST between and after."""
        plan = self.plan()
        self.run.archive.files_total = len(plan)
        reads: dict[int, _FileRead] = {}

        def start_reads(upto: int) -> None:
            for j in range(upto, min(len(plan), upto + LOOKAHEAD_FILES + 1)):
                if j not in reads:
                    reads[j] = _FileRead(self.reader, self.key, plan[j][0])

        cursor = self.run.start_ts
        try:
            if self._ready is not None:
                start_reads(0)  # the downloads overlap the check; no row before it passed
                await self._ready
                self.run.count_from_now()  # as if the check had come before the run
            for i, (_, a, b) in enumerate(plan):
                start_reads(i)
                if a > cursor:
                    gap = "no archive file for this window"
                    async for chunk in self._elsewhere(cursor, a, gap):
                        yield chunk
                async for chunk in self._file(reads[i], a, b):
                    yield chunk
                del reads[i]
                cursor = b
        finally:
            for read in reads.values():  # a run cut short: stop the reads ahead
                await read.cancel()
        if cursor < self.run.end_ts:
            async for chunk in self._elsewhere(cursor, self.run.end_ts, "not in the archives yet"):
                yield chunk

    # -- the ledger ----------------------------------------------------------------

    def committed(self, until_ts: int) -> list[LedgerEntry]:
        """The files whose rows are all committed now that ``until_ts`` is (each once)."""
        done = [entry for end, entry in self._pending if end <= until_ts]
        self._pending = [(end, entry) for end, entry in self._pending if end > until_ts]
        return done

    # -- the pieces ----------------------------------------------------------------

    def _mark(self, chunk: Chunk) -> Chunk:
        if self._hole:
            self._hole = False
            return replace(chunk, after_hole=True)
        return chunk

    def _progress(self, covered_until: int) -> None:
        pages = self.run.pages
        pages.covered_until_ts = covered_until
        pages.done_ns = max(pages.done_ns, covered_until - self.run.start_ts)

    async def _elsewhere(self, a: int, b: int, why: str) -> AsyncGenerator[Chunk, None]:
        """``[a, b)`` that no file serves: REST from its history's start on, the rest
        (all of it under ``only``) a hole."""
        if self.mode is ArchiveMode.ONLY:
            self._leave_uncovered(a, b, f"archives: only; {why}")
            return
        rest_a = a if self.rest_from_ts is None else max(a, min(b, self.rest_from_ts))
        if rest_a > a:
            self._leave_uncovered(a, rest_a, f"{why}; {self.rest_gap}")
        if rest_a < b:
            async for chunk in self._rest(rest_a, b):
                yield chunk

    def _leave_uncovered(self, a: int, b: int, why: str) -> None:
        self.run.archive.uncovered.append((a, b))
        self._hole = True
        log.warning(
            "%s: %s -> %s left uncovered (%s): a hole until fetched another way",
            self.key,
            iso_datetime(a),
            iso_datetime(b),
            why,
        )

    async def _rest(self, a: int, b: int) -> AsyncGenerator[Chunk, None]:
        """The REST paginator over ``[a, b)``, its counters added to the run's."""
        pages = self.run.pages
        base = (pages.requests, pages.pages, pages.windows_total, pages.windows_done)
        seg = PageStats()
        walk = self._rest_chunks(a, b, seg)
        async with contextlib.aclosing(walk):
            async for chunk in walk:
                pages.requests = base[0] + seg.requests
                pages.pages = base[1] + seg.pages
                pages.windows_total = base[2] + seg.windows_total
                pages.windows_done = base[3] + seg.windows_done
                self._progress(chunk.covered_until_ts)
                self.run.archive.rest_rows += chunk.rows.height
                yield self._mark(replace(chunk, origin=REST_ORIGIN))

    async def _file(self, read: _FileRead, a: int, b: int) -> AsyncGenerator[Chunk, None]:
        """The rows of ``read.file`` within ``[a, b)``; on ``ArchiveUnavailable``, REST
        (or a hole) for what is not read yet."""
        file = read.file
        origin = ARCHIVE_ORIGIN_PREFIX + file.name
        frontier = a  # everything before it is yielded
        end = _End()
        async for item in read.items():
            if isinstance(item, _End):
                end = item
                break
            rows = clip_rows(item, a, b)
            if rows.height == 0:
                continue
            last = int(rows.get_column("ts")[-1])
            self.run.archive.archive_rows += rows.height
            chunk = Chunk(rows, frontier, max(frontier, last), origin=origin)
            frontier = chunk.covered_until_ts
            self._progress(frontier)
            yield self._mark(chunk)
        if end.failure is not None:
            self._fall_back(file, frontier, b, end.failure)
            async for chunk in self._after_fallback(frontier, b):
                yield chunk
            return
        ingested = end.ingested
        self.run.archive.files_done += 1
        self._progress(b)
        if ingested is not None:  # before the yield: the commit of ``b`` may come first
            self._pending.append(
                (
                    b,
                    LedgerEntry(
                        name=file.name,
                        path=file.path,
                        checksum_path=file.checksum_path,
                        sha256=ingested.sha256,
                        published_sha256=ingested.published_sha256,
                        rows=ingested.rows,
                        start_ts=file.start_ts,
                        end_ts=file.end_ts,
                        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    ),
                )
            )
        yield self._mark(Chunk(pl.DataFrame(), frontier, b, origin=origin))

    def _fall_back(self, file: ArchiveFile, a: int, b: int, reason: str) -> None:
        rest = self.mode is ArchiveMode.AUTO and (
            self.rest_from_ts is None or self.rest_from_ts < b
        )
        fallback = ArchiveFallback(file.name, reason, a, b, rest)
        self.run.archive.fallbacks.append(fallback)
        log.warning("%s: archive file %s", self.key, fallback)

    async def _after_fallback(self, a: int, b: int) -> AsyncGenerator[Chunk, None]:
        if a >= b:
            return
        async for chunk in self._elsewhere(a, b, "its archive file could not be used"):
            yield chunk
