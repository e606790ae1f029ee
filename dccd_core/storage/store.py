"""The Parquet store: merge-writes, range reads, inventory and coverage of the lake.

One ``Store`` is a root folder (``DCCD_DATA_PATH`` or ``./data`` by default). Every
write is a merge-write of whole period files under the dataset's lock (see
``files`` for the atomic replace, ``frames`` for the newer-wins merge, ``layout`` for
the paths), so concurrent writers, readers and crashes never lose a committed row
or show a half-written file. Reads open only the period files a range overlaps, and
footer statistics answer "how much, from when to when" without reading data.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dccd_core.domain import (
    ConfigError,
    DatasetKey,
    StoreError,
    TimeLike,
    to_ns,
)

from .coverage import (
    Coverage,
    HoleReport,
    find_holes,
    load_coverage,
    rebuild_coverage,
    save_coverage,
)
from .files import (
    clean_stale_temps,
    ensure_dir,
    read_footer,
    read_period_frame,
    ts_range_from_footer,
    write_parquet_atomic,
)
from .frames import coerce_rows, empty_frame, merge_rows, split_by_period, storage_schema
from .layout import (
    PeriodFile,
    coverage_path,
    dataset_dir,
    has_dataset,
    list_datasets,
    list_period_files,
    lock_path,
    period_of,
    period_path,
)
from .lock import dataset_lock
from .results import DatasetInfo, WriteResult
from .writer import StoreWriter

__all__ = ["Store", "dccd_version", "resolve_range"]

logger = logging.getLogger(__name__)

_DEFAULT_ROOT = "data"


@cache
def dccd_version() -> str:
    """The installed dccd version, for provenance (``unknown`` when not installed)."""
    try:
        return importlib.metadata.version("dccd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
    Instances are cheap and hold no open files; all state is on disk.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        commit_rows: int = 100_000,
        commit_seconds: float = 30.0,
    ) -> None:
        if root is None:
            root = os.environ.get("DCCD_DATA_PATH") or _DEFAULT_ROOT
        self.root: Path = Path(root).expanduser().absolute()
        if commit_rows < 1:
            raise ConfigError(f"commit_rows must be >= 1, got {commit_rows}")
        if commit_seconds < 0:
            raise ConfigError(f"commit_seconds must be >= 0, got {commit_seconds}")
        self.commit_rows = commit_rows
        self.commit_seconds = commit_seconds

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def check_writable(self) -> None:
        """Raise ``StoreError`` now if the root cannot be written (or created).

        Called before any request, so a read-only or misplaced lake is said at once,
        not after a fetch. Probes with a temp file in the root, or in its nearest
        existing parent when the root is still to be created; nothing is left behind.
        """
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
        """Merge ``rows`` into the dataset; the incoming row wins on a duplicate key.

        The schema is checked before anything is touched (``SchemaMismatch``). Each
        period file touched is rewritten once, atomically, under the dataset lock.
        """
        frame = coerce_rows(key.data_type, rows)
        metadata = self._provenance(provenance)
        if frame.height == 0:
            return WriteResult()
        parts = split_by_period(key, frame)
        result = WriteResult()
        with self._locked(key):
            for period in sorted(parts):  # refuse corrupt targets before changing any
                self._check_target(key, period)
            for period in sorted(parts):
                result += self._merge_period(key, period, [parts[period]], metadata)
        return WriteResult(frame.height, result.new_rows, result.files)

    def writer(
        self,
        key: DatasetKey,
        *,
        provenance: Mapping[str, str] | None = None,
        commit_rows: int | None = None,
        commit_seconds: float | None = None,
    ) -> StoreWriter:
        """A buffering writer (context manager) that writes each period once per pass."""
        return StoreWriter(
            self,
            key,
            provenance=provenance,
            commit_rows=self.commit_rows if commit_rows is None else commit_rows,
            commit_seconds=self.commit_seconds if commit_seconds is None else commit_seconds,
        )

    @contextmanager
    def _locked(self, key: DatasetKey) -> Iterator[Path]:
        """Hold the dataset lock with its folder created and crash leftovers removed."""
        folder = dataset_dir(self.root, key)
        with dataset_lock(lock_path(self.root, key)):
            ensure_dir(folder)
            removed = clean_stale_temps(folder)
            if removed:
                logger.info("removed %d stale temp file(s) in %s", removed, folder)
            yield folder

    def _check_target(self, key: DatasetKey, period: str) -> None:
        path = period_path(self.root, key, period)
        if path.exists():
            read_footer(path)

    def _merge_period(
        self,
        key: DatasetKey,
        period: str,
        frames: Sequence[pl.DataFrame],
        metadata: Mapping[str, str],
    ) -> WriteResult:
        """Merge ``frames`` (arrival order) into one period file; caller holds the lock."""
        path = period_path(self.root, key, period)
        try:
            old: pl.DataFrame | None = read_period_frame(path)
        except FileNotFoundError:
            old = None
        new = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
        merged = merge_rows(key.data_type, old, new)
        write_parquet_atomic(path, merged, storage_schema(key.data_type), metadata)
        before = 0 if old is None else old.height
        return WriteResult(new.height, merged.height - before, (path,))

    def _provenance(self, provenance: Mapping[str, str] | None) -> dict[str, str]:
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

    # -- reading -----------------------------------------------------------------

    def _files_in(self, key: DatasetKey, start: int | None, end: int | None) -> list[PeriodFile]:
        if start is not None and end is not None and end <= start:
            return []
        files = list_period_files(self.root, key)
        lo = period_of(key, start) if start is not None else None
        hi = period_of(key, end - 1) if end is not None else None
        return [
            f for f in files if (lo is None or f.period >= lo) and (hi is None or f.period <= hi)
        ]

    @staticmethod
    def _range_filter(lazy: pl.LazyFrame, start: int | None, end: int | None) -> pl.LazyFrame:
        if start is not None:
            lazy = lazy.filter(pl.col("ts") >= start)
        if end is not None:
            lazy = lazy.filter(pl.col("ts") < end)
        return lazy

    def _lazy(
        self, key: DatasetKey, files: list[PeriodFile], start: int | None, end: int | None
    ) -> pl.LazyFrame:
        columns = list(empty_frame(key.data_type).columns)
        lazy = pl.scan_parquet([f.path for f in files], hive_partitioning=False)
        return self._range_filter(lazy.select(columns), start, end)

    def read(
        self, key: DatasetKey, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pl.DataFrame:
        """Rows with ``start <= ts < end`` sorted by ts, exact schema even when empty."""
        start_ts, end_ts = resolve_range(start, end)
        files = self._files_in(key, start_ts, end_ts)
        if not files:
            return empty_frame(key.data_type)
        try:
            return self._lazy(key, files, start_ts, end_ts).collect()
        except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
            for period_file in files:  # name the culprit with the usual message
                read_period_frame(period_file.path)
            raise StoreError(f"could not read {key}: {exc}") from exc

    def scan(
        self, key: DatasetKey, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pl.LazyFrame:
        """The lazy form of ``read`` for big ranges; footers are checked now, data later."""
        start_ts, end_ts = resolve_range(start, end)
        files = self._files_in(key, start_ts, end_ts)
        if not files:
            return empty_frame(key.data_type).lazy()
        for period_file in files:
            read_footer(period_file.path)
        return self._lazy(key, files, start_ts, end_ts)

    def _file_ts_range(
        self, path: Path, meta: pq.FileMetaData | None = None
    ) -> tuple[int, int] | None:
        meta = read_footer(path) if meta is None else meta
        if meta.num_rows == 0:
            return None
        bounds = ts_range_from_footer(meta)
        if bounds is None:  # no statistics (a foreign writer): read the one column
            ts = read_period_frame(path, ["ts"]).get_column("ts")
            bounds = (int(ts.min()), int(ts.max()))  # type: ignore[arg-type]
        return bounds

    def first_ts(self, key: DatasetKey) -> int | None:
        """The earliest stored ts, from the first period file's footer."""
        for period_file in list_period_files(self.root, key):
            bounds = self._file_ts_range(period_file.path)
            if bounds is not None:
                return bounds[0]
        return None

    def last_ts(self, key: DatasetKey) -> int | None:
        """The latest stored ts, from the last period file's footer."""
        for period_file in reversed(list_period_files(self.root, key)):
            bounds = self._file_ts_range(period_file.path)
            if bounds is not None:
                return bounds[1]
        return None

    def datasets(self) -> list[DatasetKey]:
        """Every dataset present under the root."""
        return list_datasets(self.root)

    def info(self, key: DatasetKey) -> DatasetInfo:
        """Rows, time range, files and bytes of one dataset, from footers only."""
        rows = size = 0
        first: int | None = None
        last: int | None = None
        files = list_period_files(self.root, key)
        for period_file in files:
            meta = read_footer(period_file.path)
            rows += meta.num_rows
            size += period_file.path.stat().st_size
            bounds = self._file_ts_range(period_file.path, meta)
            if bounds is not None:
                first = bounds[0] if first is None else min(first, bounds[0])
                last = bounds[1] if last is None else max(last, bounds[1])
        return DatasetInfo(key, rows, first, last, len(files), size)

    def inventory(self) -> list[DatasetInfo]:
        """``info`` of every dataset under the root."""
        return [self.info(key) for key in self.datasets()]

    # -- coverage ----------------------------------------------------------------

    def _load_or_rebuild(self, key: DatasetKey) -> tuple[Coverage, bool]:
        path = coverage_path(self.root, key)
        coverage = load_coverage(path)  # logs a warning itself when the file is corrupt
        if coverage is not None:
            return coverage, False
        files = list_period_files(self.root, key)
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

    def coverage(self, key: DatasetKey) -> Coverage:
        """The fetched ranges of a dataset (rebuilt and saved if the record is lost)."""
        coverage, rebuilt = self._load_or_rebuild(key)
        if rebuilt:
            try:
                with self._locked(key):
                    path = coverage_path(self.root, key)
                    if load_coverage(path) is None:
                        _set_aside_corrupt(path)
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
            coverage, rebuilt = self._load_or_rebuild(key)
            path = coverage_path(self.root, key)
            if rebuilt:
                _set_aside_corrupt(path)
            save_coverage(path, coverage.add(start, end))

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
        for period_file in self._files_in(key, start_ts, end_ts):
            read_footer(period_file.path)
        return find_holes(key, self.coverage(key), start_ts, end_ts, now_ts)

    def holes(
        self, key: DatasetKey, start: TimeLike, end: TimeLike, *, now_ts: int | None = None
    ) -> list[tuple[int, int]]:
        """The never-fetched parts of ``[start, end)`` that have happened, oldest first
        (see ``hole_report``: the tail not fetched yet is not a hole)."""
        return list(self.hole_report(key, start, end, now_ts=now_ts).holes)


def _set_aside_corrupt(path: Path) -> None:
    """Keep an unreadable coverage record for inspection instead of overwriting it."""
    if path.exists():
        target = path.with_name(path.name + ".corrupt")
        os.replace(path, target)
        logger.warning("kept the unreadable coverage record as %s", target)
