"""The Parquet store: merge-writes, range reads, inventory and coverage of the lake.

One ``Store`` is a root folder (``DCCD_DATA_PATH`` or ``./data`` by default), or an
object-store location ``s3://bucket/prefix`` with the same layout (``objectstore``;
the few operations that differ go through ``fs``). Every
write goes through the one commit path (``commit.Committer``) under the dataset's lock:
a merge-write of a period file, or a deduplicated segment beside a large one
(``segments``; ``files`` for the atomic replace, ``frames`` for the newer-wins merge,
``layout`` for the paths), so concurrent writers, readers and crashes never lose a
committed row, store it twice or show a half-written file. Reads open only the files a
range overlaps (``reads``, safe while compactions run), and footer statistics answer
"how much, from when to when" without reading data.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow as pa

from dccd_core.domain import ConfigError, DatasetKey, StoreError, TimeLike, to_ns

from . import reads
from .commit import (
    Committer,
    compact_closed,
    dccd_version,
    load_or_rebuild_coverage,
    locked_dataset,
    record_coverage_locked,
    set_aside_corrupt,
)
from .coverage import Coverage, HoleReport, find_holes, load_coverage, save_coverage
from .files import read_footer
from .frames import coerce_rows
from .layout import coverage_path, has_dataset, list_datasets, list_period_files
from .objectstore import ObjectPath, ObjectStoreOptions, is_object_url, object_root
from .results import DatasetInfo, WriteResult
from .segments import PeriodIndexCache, SegmentPolicy, compact_period

__all__ = ["Store", "dccd_version", "resolve_range"]

logger = logging.getLogger(__name__)

_DEFAULT_ROOT = "data"


def resolve_range(start: TimeLike | None, end: TimeLike | None) -> tuple[int | None, int | None]:
    """``[start, end)`` in ns (either side open); ``end`` before ``start`` is a ConfigError."""
    start_ts = to_ns(start) if start is not None else None
    end_ts = to_ns(end) if end is not None else None
    if start_ts is not None and end_ts is not None and end_ts < start_ts:
        raise ConfigError(f"end {end!r} is before start {start!r}")
    return start_ts, end_ts


class Store:
    """A Hive-partitioned Parquet lake rooted at ``root``.

    ``commit_rows`` / ``commit_seconds`` are the default bounds of ``writer()``: it
    commits early only when that many rows are buffered or that long has passed.
    ``segments`` is the policy for segments and compaction (``segments.SegmentPolicy``).
    ``object_store``: endpoint, region, credentials and lease TTL of an ``s3://`` root
    (unset fields come from the AWS variables; see ``objectstore``).
    Instances are cheap and hold no open files; all state is on disk, except an index of
    the keys of the last periods written (so small commits into a large period need not
    read it again), which is checked against the files before every use.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        commit_rows: int = 100_000,
        commit_seconds: float = 30.0,
        segments: SegmentPolicy | None = None,
        object_store: ObjectStoreOptions | None = None,
    ) -> None:
        if root is None:
            root = os.environ.get("DCCD_DATA_PATH") or _DEFAULT_ROOT
        self.root: Path = (
            object_root(root, object_store)  # type: ignore[arg-type]
            if is_object_url(root)
            else Path(root).expanduser().absolute()
        )
        if commit_rows < 1:
            raise ConfigError(f"commit_rows must be >= 1, got {commit_rows}")
        if commit_seconds < 0:
            raise ConfigError(f"commit_seconds must be >= 0, got {commit_seconds}")
        self.commit_rows = commit_rows
        self.commit_seconds = commit_seconds
        self.segments = segments or SegmentPolicy()
        self._index_cache = PeriodIndexCache()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def check_writable(self) -> None:
        """Raise ``StoreError`` now if the root cannot be written (or created).

        Called before any request, so a read-only or misplaced lake is said at once,
        not after a fetch. Probes with a temp file in the root, or in its nearest
        existing parent when the root is still to be created; nothing is left behind.
        """
        if isinstance(self.root, ObjectPath):
            self._check_bucket_writable(self.root)
            return
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        fix = "fix its permissions or choose another root (store.root or DCCD_DATA_PATH)"
        if not existing.is_dir():
            raise StoreError(
                f"the lake root {self.root} cannot be created: {existing} is a file; {fix}"
            )
        try:
            handle, probe = tempfile.mkstemp(prefix=".dccd-write-probe-", dir=existing)
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            what = "is not writable" if existing == self.root else f"cannot be made in {existing}"
            reason = exc.strerror or str(exc)
            raise StoreError(f"the lake root {self.root} {what} ({reason}); {fix}") from None

    @staticmethod
    def _check_bucket_writable(root: ObjectPath) -> None:
        probe = root / f".dccd-write-probe-{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"")
            probe.unlink(missing_ok=True)
        except StoreError as exc:
            raise StoreError(
                f"the lake root {root} is not writable ({exc}); fix the bucket's "
                "permissions or choose another root (store.root or DCCD_DATA_PATH)"
            ) from None

    def has(self, key: DatasetKey) -> bool:
        """Whether the lake holds ``key`` (data or a coverage record), see ``has_dataset``."""
        return has_dataset(self.root, key)

    # -- writing -----------------------------------------------------------------

    def write(
        self,
        key: DatasetKey,
        rows: pl.DataFrame | pa.Table,
        *,
        provenance: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Commit ``rows`` now; the incoming row wins on a duplicate key.

        The schema is checked before anything is touched (``SchemaMismatch``), and so
        are the target files (``CorruptFile``). Goes through the one commit path
        (``writer``) with unbounded buffering, so each period is committed once.
        """
        frame = coerce_rows(key.data_type, rows)
        committer = self.writer(
            key, provenance=provenance, commit_rows=2**62, commit_seconds=float("inf")
        )
        if frame.height == 0:
            return WriteResult()
        committer.add(frame)
        committer.check_targets()
        result = committer.close()
        return WriteResult(frame.height, result.new_rows, result.files)

    def writer(
        self,
        key: DatasetKey,
        *,
        provenance: Mapping[str, str] | None = None,
        commit_rows: int | None = None,
        commit_seconds: float | None = None,
    ) -> Committer:
        """The commit pipeline of ``key`` (context manager; see ``commit.Committer``)."""
        return Committer(
            self.root,
            key,
            provenance=provenance,
            commit_rows=self.commit_rows if commit_rows is None else commit_rows,
            commit_seconds=self.commit_seconds if commit_seconds is None else commit_seconds,
            cache=self._index_cache,
            policy=self.segments,
        )

    def compact(self, key: DatasetKey, *, closed_only: bool = False) -> int:
        """Merge every period's segments into its period file (only closed periods
        with ``closed_only``); returns how many periods were compacted."""
        with self._locked(key):  # each period keeps its newest file's provenance
            if closed_only:
                return compact_closed(self.root, key, None, self._index_cache, self.segments)
            periods = sorted(
                {f.period for f in list_period_files(self.root, key, segments_only=True)}
            )
            return sum(compact_period(self.root, key, p, None, self._index_cache) for p in periods)

    @contextmanager
    def _locked(self, key: DatasetKey) -> Iterator[Path]:
        with locked_dataset(self.root, key) as folder:
            yield folder

    # -- reading -----------------------------------------------------------------

    def read(
        self, key: DatasetKey, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pl.DataFrame:
        """Rows with ``start <= ts < end`` sorted by ts, exact schema even when empty
        (consistent while compactions run: see ``reads``)."""
        return reads.read_rows(self.root, key, *resolve_range(start, end))

    def scan(
        self, key: DatasetKey, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pl.LazyFrame:
        """The lazy form of ``read`` for big ranges; footers are checked now, data later
        (a compaction between the two can make the collect fail: scan again)."""
        return reads.scan_rows(self.root, key, *resolve_range(start, end))

    def first_ts(self, key: DatasetKey) -> int | None:
        """The earliest stored ts, from the footers of the first period's files."""
        return next((lo for lo, _ in reads.period_ts_ranges(self.root, key, newest=False)), None)

    def last_ts(self, key: DatasetKey) -> int | None:
        """The latest stored ts, from the footers of the last period's files."""
        return next((hi for _, hi in reads.period_ts_ranges(self.root, key, newest=True)), None)

    def datasets(self) -> list[DatasetKey]:
        """Every dataset present under the root."""
        return list_datasets(self.root)

    def info(self, key: DatasetKey) -> DatasetInfo:
        """Rows, time range, files and bytes of one dataset, from footers only."""
        rows = size = 0
        first: int | None = None
        last: int | None = None
        reads.recover_if_needed(self.root, key)
        files = list_period_files(self.root, key)
        for period_file in files:
            meta = read_footer(period_file.path)
            rows += meta.num_rows
            size += period_file.path.stat().st_size
            bounds = reads.file_ts_range(period_file.path, meta)
            if bounds is not None:
                first = bounds[0] if first is None else min(first, bounds[0])
                last = bounds[1] if last is None else max(last, bounds[1])
        return DatasetInfo(key, rows, first, last, len(files), size)

    def inventory(self) -> list[DatasetInfo]:
        """``info`` of every dataset under the root."""
        return [self.info(key) for key in self.datasets()]

    # -- coverage ----------------------------------------------------------------

    def _load_or_rebuild(self, key: DatasetKey) -> tuple[Coverage, bool]:
        return load_or_rebuild_coverage(self.root, key)

    def coverage(self, key: DatasetKey) -> Coverage:
        """The fetched ranges of a dataset (rebuilt and saved if the record is lost)."""
        coverage, rebuilt = self._load_or_rebuild(key)
        if rebuilt:
            try:
                with self._locked(key):
                    path = coverage_path(self.root, key)
                    if load_coverage(path) is None:
                        set_aside_corrupt(path)
                        save_coverage(path, coverage)
            except (OSError, StoreError) as exc:  # e.g. a read-only lake: still answer
                logger.warning("could not save the rebuilt coverage of %s: %s", key, exc)
        return coverage

    def record_coverage(self, key: DatasetKey, start_ts: TimeLike, end_ts: TimeLike) -> None:
        """Record that ``[start_ts, end_ts)`` was fetched, whether or not it had rows."""
        start, end = to_ns(start_ts), to_ns(end_ts)
        if end < start:
            raise ConfigError(f"coverage range ends before it starts: [{start}, {end})")
        if end == start:
            return
        with self._locked(key):
            record_coverage_locked(self.root, key, [(start, end)])

    def hole_report(
        self, key: DatasetKey, start: TimeLike, end: TimeLike, *, now_ts: int | None = None
    ) -> HoleReport:
        """The holes of ``[start, end)`` and the not-yet-fetched tail (``find_holes``).

        The period files of the window are checked first (footers): a damaged file's
        rows are lost although the coverage record says they were fetched, so it is a
        ``CorruptFile``, the same error ``read`` gives, never "no holes".
        """
        start_ts, end_ts = resolve_range(start, end)
        assert start_ts is not None and end_ts is not None
        for period_file in reads.files_in(self.root, key, start_ts, end_ts):
            read_footer(period_file.path)
        return find_holes(key, self.coverage(key), start_ts, end_ts, now_ts)

    def holes(
        self, key: DatasetKey, start: TimeLike, end: TimeLike, *, now_ts: int | None = None
    ) -> list[tuple[int, int]]:
        """The never-fetched parts of ``[start, end)`` that have happened, oldest first
        (see ``hole_report``: the tail not fetched yet is not a hole)."""
        return list(self.hole_report(key, start, end, now_ts=now_ts).holes)
