"""``ensure``: read a window of a dataset, fetching first only what was never fetched.

``ensure(exchange, symbol, data_type, span=..., start=..., end=...)`` reads the
dataset's coverage, backfills each hole of ``[start, end)`` (and the tail not fetched
yet) through the normal ``backfill`` (same source, limiter, write path and coverage
record), then returns exactly the stored rows of the window.

Concurrent calls on overlapping windows fetch each missing range once: a per-dataset
*ensure lock* (a file lock under ``{root}/.locks``, guarded per process by a thread
lock, so it holds across threads, async tasks and processes) is held across "read
coverage -> fetch the holes -> record coverage"; the next caller then finds the range
covered and fetches nothing. It is a separate lock from the store's write lock: the
backfill commits from a worker thread, which takes the write lock itself.

History comes the way ``backfill`` fetches it: ``archives`` (``auto`` by default, or
the dataset's catalog ``archives:`` mode where the caller knows it) and ``archive_url``
are passed through, so an ensured window reads the exchange's bulk files first just as
the dataset's backfill asset would.

``max_fetch=N`` refuses, before any request, a window that would need more than N data
requests; the error gives the estimate (``fetch_estimate``: exact for candles, one
request per page window; rough for trades, from the trade rate stored so far; archive
files the backfill would read counted as a request each plus one for the checksum,
instead of the REST pages they replace).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl
from filelock import Timeout

from dccd_core.domain import (
    ConfigError,
    DatasetKey,
    DataType,
    StoreError,
    TimeLike,
    iso_datetime,
    now_ns,
)
from dccd_core.sources.archives.mode import parse_archive_mode
from dccd_core.sources.base import Source
from dccd_core.storage import Store, resolve_range
from dccd_core.storage.coverage import HoleReport
from dccd_core.storage.layout import lock_path
from dccd_core.storage.lock import process_locks

from .backfill import ArchiveMode, backfill
from .fetch_estimate import (
    DEFAULT_TRADES_PER_S,
    FetchEstimate,
    estimate_fetch,
    estimate_requests,
)
from .sync import run_sync as run_sync  # importable from here, as before
from .sync import sync_twin

__all__ = [
    "DEFAULT_TRADES_PER_S",
    "FetchEstimate",
    "FetchTooLarge",
    "ensure",
    "ensure_async",
    "estimate_requests",
    "missing_ranges",
]

ENSURE_LOCK_TIMEOUT_S = 3_600.0
"""A second ``ensure`` waits this long for the first one's fetch of the same dataset."""


class FetchTooLarge(ConfigError):
    """A window whose missing ranges need more requests than ``max_fetch`` allows."""


# -- what to fetch ---------------------------------------------------------------------


def missing_ranges(report: HoleReport) -> list[tuple[int, int]]:
    """The holes and the tail not fetched yet: everything ``ensure`` fetches."""
    ranges = list(report.holes)
    if report.unfetched is not None:
        ranges.append(report.unfetched)
    return sorted(ranges)


def _too_large(key: DatasetKey, estimate: FetchEstimate, max_fetch: int) -> FetchTooLarge:
    a, b = estimate.ranges[0][0], estimate.ranges[-1][1]
    return FetchTooLarge(
        f"{key}: fetching the {len(estimate.ranges)} missing range(s) between "
        f"{iso_datetime(a)} and {iso_datetime(b)} needs about {estimate.requests} requests "
        f"({estimate.note}), more than max_fetch={max_fetch}; narrow the window, raise "
        "max_fetch, or run `dccd backfill` for it"
    )


# -- the ensure lock ---------------------------------------------------------------------


def _ensure_lock_path(store: Store, key: DatasetKey) -> Path:
    path = lock_path(store.root, key)
    return path.with_name(path.stem + ".ensure.lock")


class _EnsureLock:
    """Process-wide thread lock + file lock of one dataset; acquired and released from
    any thread (plain ``Lock``, ``FileLock(thread_local=False)``), so an async caller
    can wait for it in a worker thread without blocking its event loop."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self.thread_lock, self.file_lock = process_locks(path, reentrant=False)
        self.timeout_s = timeout_s

    def acquire(self) -> None:
        if not self.thread_lock.acquire(timeout=self.timeout_s):
            raise StoreError(
                f"timed out after {self.timeout_s:g}s waiting for {self.path}: another "
                "ensure of this dataset is still fetching (this process)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file_lock.acquire(timeout=self.timeout_s)
        except Timeout:
            self.thread_lock.release()
            raise StoreError(
                f"timed out after {self.timeout_s:g}s waiting for {self.path}: another "
                "process is fetching this dataset"
            ) from None
        except BaseException:
            self.thread_lock.release()
            raise

    def release(self) -> None:
        try:
            self.file_lock.release()
        finally:
            self.thread_lock.release()

    async def acquire_async(self) -> None:
        task = asyncio.ensure_future(asyncio.to_thread(self.acquire))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # cancelled while a worker thread waits: release as soon as it gets the lock
            def undo(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self.release()

            task.add_done_callback(undo)
            raise


# -- the verb --------------------------------------------------------------------------


def _store_of(store: Store | None, root: str | os.PathLike[str] | None) -> Store:
    if store is not None and root is not None:
        raise ConfigError("give either store or root, not both")
    return store if store is not None else Store(root)


async def ensure_async(
    exchange: str,
    symbol: str,
    data_type: str,
    span: str | None = None,
    *,
    start: TimeLike,
    end: TimeLike | None = None,
    max_fetch: int | None = None,
    store: Store | None = None,
    root: str | os.PathLike[str] | None = None,
    source: Source | None = None,
    lock_timeout_s: float = ENSURE_LOCK_TIMEOUT_S,
    archives: ArchiveMode | str = ArchiveMode.AUTO,
    archive_url: str | None = None,
) -> pl.DataFrame:
    """The rows of ``[start, end)`` (``end``: now), fetching only the missing ranges first.

    See the module docstring. ``source``: a ready source to fetch with (the caller
    closes it); default: built from the registry when a fetch is needed, then closed.
    ``archives``/``archive_url``: as ``backfill`` takes them (the dataset's catalog
    ``archives:`` and ``exchanges.<name>.archive_url`` where known; default auto).
    """
    key = DatasetKey.of(exchange, symbol, data_type, span)
    mode = parse_archive_mode(archives)  # a wrong mode is said before any lock or request
    if key.data_type is DataType.BOOK:
        raise ConfigError(f"{key}: order books have no history to ensure; use dccd read")
    if max_fetch is not None and max_fetch < 0:
        raise ConfigError(f"max_fetch must be >= 0, got {max_fetch}")
    store = _store_of(store, root)
    now = now_ns()
    start_ts, end_ts = resolve_range(start, end if end is not None else now)
    assert start_ts is not None and end_ts is not None
    end_ts = min(end_ts, now)
    if end_ts <= start_ts:
        return store.read(key, start_ts, max(start_ts, end_ts))
    if store.has(key) and not missing_ranges(store.hole_report(key, start_ts, end_ts)):
        return store.read(key, start_ts, end_ts)  # complete already: no lock, no request

    lock = _EnsureLock(_ensure_lock_path(store, key), lock_timeout_s)
    await lock.acquire_async()
    try:
        # under the lock: a concurrent ensure may have fetched part of it meanwhile
        now = now_ns()
        ranges = missing_ranges(store.hole_report(key, start_ts, end_ts, now_ts=now))
        if ranges:
            async with _source_for(key, source) as src:
                if max_fetch is not None:  # archive files counted where they serve
                    estimate = await estimate_fetch(
                        key, ranges, source=src, archives=mode, archive_url=archive_url,
                        store=store, now_ts=now,
                    )  # fmt: skip
                    if estimate.requests > max_fetch:
                        raise _too_large(key, estimate, max_fetch)
                await _fetch(key, ranges, store, src, mode, archive_url)
    finally:
        lock.release()
    return store.read(key, start_ts, end_ts)


@contextlib.asynccontextmanager
async def _source_for(key: DatasetKey, source: Source | None) -> AsyncIterator[Source]:
    """``source``, or one built from the registry (no request) and closed after."""
    if source is not None:
        yield source
        return
    from dccd_core.sources.registry import build_source

    async with build_source(key.exchange) as owned:
        yield owned


async def _fetch(
    key: DatasetKey,
    ranges: list[tuple[int, int]],
    store: Store,
    source: Source,
    archives: ArchiveMode,
    archive_url: str | None,
) -> None:
    for a, b in ranges:  # one source: one limiter, one symbol check (cached)
        await backfill(
            key, start=a, end=b, store=store, source=source, archives=archives,
            archive_url=archive_url,
        )


ensure = sync_twin(
    ensure_async,
    """The synchronous ``ensure_async``: the window's rows, missing ranges fetched first.

    It runs its own event loop (in a thread of its own when called from a running loop,
    e.g. a notebook), so a ``source`` given here must not be bound to another loop;
    async code passes its source to ``ensure_async`` instead.
    """,
)
