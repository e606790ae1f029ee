"""The one commit path into the lake: every writer's rows go through ``Committer``.

Backfills, streams, derived candles, imports and the Dagster IO manager all hand rows
to a ``Committer`` (``Store.writer``, or ``Store.write`` for one-shot commits). It

* checks the schema of every batch as it arrives (``SchemaMismatch`` before anything
  is buffered);
* buffers rows per period and commits only past a bound (``commit_rows`` buffered or
  ``commit_seconds`` since the last commit), on ``flush()`` and on exit. An early
  commit by row count writes every period except the one being filled (the period of
  the last rows added), unless that one alone is past the bound: finished periods are
  written once, the open one when it is complete. Memory stays about ``2 x commit_rows``;
* commits each period under the dataset lock through ``segments.commit_period``: a
  merge-rewrite, or a deduplicated segment when the period is large and the commit is
  small, so a stream flush costs what it carries, not what the day already holds;
* compacts the segments of periods that have closed, except the one it is filling:
  bounded commits into a closed period (a backfill of a big past day) append segments
  and the period is compacted once, when the writer moves on or closes (``segments``,
  "Filling a closed period");
* writes provenance into every file's footer (``source``, ``transport`` (rest, ws,
  archive, import-v3, derived, ...), ``dccd_version``, ``written_at``) and records
  the coverage handed to ``cover()`` once the rows before it are durable.

Exiting the ``with`` block flushes, also on an exception: buffered rows were fetched
correctly, and losing them would only make the next run fetch them again. A corrupt
period file fails only its own period: the others are still written, the refused rows
stay buffered, and the ``CorruptFile`` is raised after. A committer is meant for one
task; it is not thread-safe (the lock and the cache below it are).
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa

from dccd_core.domain import ConfigError, CorruptFile, DatasetKey, StoreError, now_ns, to_ns

from .coverage import Coverage, load_coverage, rebuild_coverage, save_coverage
from .files import clean_stale_temps, ensure_dir, read_footer
from .frames import coerce_rows, split_by_period
from .fs import list_entries, rename
from .layout import (
    coverage_path,
    dataset_dir,
    list_period_files,
    lock_path,
    period_bounds,
    period_of,
    period_path,
)
from .lock import dataset_lock
from .results import WriteResult
from .segments import (
    PeriodIndexCache,
    SegmentPolicy,
    commit_period,
    compact_period,
    recover,
)

__all__ = [
    "Committer",
    "StoreWriter",
    "build_provenance",
    "compact_closed",
    "dccd_version",
    "load_or_rebuild_coverage",
    "locked_dataset",
    "record_coverage_locked",
    "set_aside_corrupt",
]

logger = logging.getLogger(__name__)


@cache
def dccd_version() -> str:
    """The installed dccd version, for provenance (``unknown`` when not installed)."""
    try:
        return importlib.metadata.version("dccd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_provenance(provenance: Mapping[str, str] | None) -> dict[str, str]:
    """Footer metadata of a commit: the caller's keys, plus version and time of writing."""
    given = dict(provenance or {})
    bad = [k for k, v in given.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ConfigError(f"provenance keys and values must be strings: {bad!r}")
    return {
        "source": "unknown",
        "transport": "unknown",
        **given,
        "dccd_version": dccd_version(),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


@contextmanager
def locked_dataset(root: Path, key: DatasetKey) -> Iterator[Path]:
    """Hold the dataset lock with its folder created, crash leftovers removed and any
    interrupted compaction finished (``segments.recover``)."""
    folder = dataset_dir(root, key)
    with dataset_lock(lock_path(root, key)):
        ensure_dir(folder)
        # Every leftover (temp file, journal, hidden copy) has a name starting with ".":
        # one listing tells whether there is anything to clean up.
        if any(entry.name.startswith(".") for entry in list_entries(folder)):
            removed = clean_stale_temps(folder)
            if removed:
                logger.info("removed %d stale temp file(s) in %s", removed, folder)
            recover(folder)
        yield folder


class Committer:
    """Context manager committing rows of one dataset; see the module docstring."""

    def __init__(
        self,
        root: Path,
        key: DatasetKey,
        *,
        provenance: Mapping[str, str] | None,
        commit_rows: int,
        commit_seconds: float,
        cache: PeriodIndexCache,
        policy: SegmentPolicy,
    ) -> None:
        self.root = root
        self.key = key
        self._provenance = dict(provenance or {})
        build_provenance(self._provenance)  # refuse bad provenance now
        self.commit_rows = max(1, commit_rows)
        self.commit_seconds = commit_seconds
        self._cache = cache
        self._policy = policy
        self._buffers: dict[str, list[pl.DataFrame]] = {}
        self._sizes: dict[str, int] = {}
        self._active: str | None = None
        self._cover: list[tuple[int, int]] = []
        self._last_commit = time.monotonic()
        self._result = WriteResult()
        self._closed = False
        self._filled = False  # a commit was a ``filling`` one: close() compacts

    @property
    def result(self) -> WriteResult:
        """Everything committed so far by this committer."""
        return self._result

    def set_provenance(self, provenance: Mapping[str, str] | None) -> None:
        """Footer provenance of the commits from now on (checked now). A caller mixing
        sources (a backfill's archive files and REST) sets it before each commit."""
        given = dict(provenance or {})
        build_provenance(given)
        self._provenance = given

    @property
    def buffered_rows(self) -> int:
        """Rows added but not yet committed."""
        return sum(self._sizes.values())

    def add(self, rows: pl.DataFrame | pa.Table) -> None:
        """Buffer ``rows`` (schema-checked now); may commit if a bound is passed."""
        if self._closed:
            raise StoreError(f"writer of {self.key} is closed")
        frame = coerce_rows(self.key.data_type, rows)
        if frame.height:
            for period, part in split_by_period(self.key, frame).items():
                self._buffers.setdefault(period, []).append(part)
                self._sizes[period] = self._sizes.get(period, 0) + part.height
            self._active = period_of(self.key, int(frame.item(-1, "ts")))
        if self.buffered_rows >= self.commit_rows:
            self._commit_early()
        elif self._sizes and time.monotonic() - self._last_commit >= self.commit_seconds:
            self.flush()

    def cover(self, start_ts: int, end_ts: int) -> None:
        """Record ``[start_ts, end_ts)`` as fetched once every row added so far is
        committed (now, if nothing is buffered)."""
        start, end = to_ns(start_ts), to_ns(end_ts)
        if end < start:
            raise ConfigError(f"coverage range ends before it starts: [{start}, {end})")
        if end > start:
            self._cover.append((start, end))
        if not self._sizes:
            self.flush()

    def _commit_early(self) -> None:
        finished = [p for p in self._buffers if p != self._active]
        if finished:
            self._commit(finished)
        if self.buffered_rows >= self.commit_rows:
            self._commit(list(self._buffers))

    def flush(self) -> WriteResult:
        """Commit every buffered row (and pending coverage) now; returns what it wrote.

        The period being filled (that of the last rows added) may stay as its base
        and segments until the writer moves on or closes: see ``_commit``.
        """
        return self._commit(list(self._buffers))

    def check_targets(self) -> None:
        """Refuse (``CorruptFile``) before writing anything if a target base is damaged."""
        for period in sorted(self._buffers):
            path = period_path(self.root, self.key, period)
            if path.exists():
                read_footer(path)

    def _commit(self, periods: list[str], *, final: bool = False) -> WriteResult:
        """Commit ``periods``' buffers, compact closed periods, record coverage.

        Until ``final`` (``close``), the period being filled (``_active``) is committed
        as ``filling``: a closed one takes segments instead of a rewrite per commit and
        is compacted once, by the first commit after the writer moves to another period
        or by ``close`` (``segments``, "Filling a closed period").
        """
        filling = None if final else self._active
        done = WriteResult()
        failed: list[CorruptFile] = []
        if periods or self._cover or (final and self._filled):
            metadata = build_provenance(self._provenance)
            with locked_dataset(self.root, self.key):
                for period in sorted(periods):
                    try:
                        step = commit_period(
                            self.root,
                            self.key,
                            period,
                            self._buffers[period],
                            metadata,
                            cache=self._cache,
                            policy=self._policy,
                            filling=period == filling,
                        )
                    except CorruptFile as exc:  # keep its rows; write the healthy periods
                        failed.append(exc)
                        continue
                    # Drop the buffer only once its rows are durably in the files.
                    del self._buffers[period]
                    del self._sizes[period]
                    if period == filling:
                        self._filled = True
                        if self._is_closed(period):  # its segments end in its file
                            base = period_path(self.root, self.key, period)
                            step = WriteResult(step.rows, step.new_rows, (base,))
                    done += step
                    self._result += step
                if periods or final:
                    try:
                        compact_closed(
                            self.root,
                            self.key,
                            None,
                            self._cache,
                            self._policy,
                            skip=() if filling is None else (filling,),
                        )
                    except StoreError as exc:  # housekeeping: the rows are committed
                        logger.warning("could not compact closed periods of %s: %s", self.key, exc)
                if self._cover and not self._sizes:
                    record_coverage_locked(self.root, self.key, self._cover)
                    self._cover = []
        self._last_commit = time.monotonic()
        if failed:
            raise failed[0]
        return done

    def _is_closed(self, period: str) -> bool:
        limit = now_ns() - int(self._policy.close_after_s * 1e9)
        return period_bounds(self.key, period)[1] <= limit

    def close(self) -> WriteResult:
        """Flush and refuse further rows; returns the cumulative result."""
        if not self._closed:
            self._commit(list(self._buffers), final=True)
            self._closed = True
        return self._result

    def __enter__(self) -> Committer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as flush_exc:  # keep the original error; say the flush failed too
            exc.add_note(f"dccd: flushing buffered rows of {self.key} also failed: {flush_exc}")


StoreWriter = Committer
"""The name ``Store.writer`` returned before commits had one path (kept for callers)."""


def compact_closed(
    root: Path,
    key: DatasetKey,
    metadata: Mapping[str, str] | None,
    cache: PeriodIndexCache,
    policy: SegmentPolicy,
    *,
    now: int | None = None,
    skip: Collection[str] = (),
) -> int:
    """Merge the segments of every closed period into its base, except the periods in
    ``skip`` (being filled by the caller); caller holds the lock."""
    limit = (now_ns() if now is None else now) - int(policy.close_after_s * 1e9)
    periods = sorted({f.period for f in list_period_files(root, key, segments_only=True)})
    done = 0
    for period in periods:
        if period not in skip and period_bounds(key, period)[1] <= limit:
            done += compact_period(root, key, period, metadata, cache)
    return done


def load_or_rebuild_coverage(root: Path, key: DatasetKey) -> tuple[Coverage, bool]:
    """The coverage record, or one rebuilt from the files (True) when it is lost."""
    path = coverage_path(root, key)
    coverage = load_coverage(path)  # logs a warning itself when the file is corrupt
    if coverage is not None:
        return coverage, False
    files = list_period_files(root, key)
    if not files:
        return Coverage(), False
    # A missing record is normal for data written before coverage was recorded (an
    # import, a first stream flush): INFO. A corrupt one was already warned about.
    logger.log(
        logging.WARNING if path.exists() else logging.INFO,
        "coverage record of %s is %s; rebuilt from %d period file(s) "
        "(approximate: see dccd_core.storage.coverage)",
        key,
        "unreadable" if path.exists() else "missing",
        len(files),
    )
    return rebuild_coverage(key, files), True


def set_aside_corrupt(path: Path) -> None:
    """Keep an unreadable coverage record for inspection instead of overwriting it."""
    if path.exists():
        target = path.with_name(path.name + ".corrupt")
        rename(path, target)
        logger.warning("kept the unreadable coverage record as %s", target)


def record_coverage_locked(root: Path, key: DatasetKey, ranges: list[tuple[int, int]]) -> None:
    """Add ``ranges`` to the dataset's coverage record; caller holds the lock."""
    coverage, rebuilt = load_or_rebuild_coverage(root, key)
    path = coverage_path(root, key)
    if rebuilt:
        set_aside_corrupt(path)
    for start, end in ranges:
        coverage = coverage.add(start, end)
    save_coverage(path, coverage)
