"""Reading the lake safely while compactions run: range reads, scans, footer ranges.

A compaction may hide files from a listing or replace a file between listing and
reading; a read counts only if no compaction was under way when it ended and every
file it read is still the same file, else it is read again (in the end under the
dataset lock). Footer statistics answer "from when to when" without reading data. Its
own module so ``Store`` stays the short public face and this retry logic reads whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dccd_core.domain import DatasetKey, StoreError

from .commit import locked_dataset
from .compaction import has_pending_compaction
from .files import read_footer, read_period_frame, ts_range_from_footer
from .frames import empty_frame
from .fs import parquet_sources
from .layout import PeriodFile, dataset_dir, list_period_files, period_of

__all__ = [
    "file_ts_range",
    "files_in",
    "period_ts_ranges",
    "read_rows",
    "recover_if_needed",
    "scan_rows",
]

logger = logging.getLogger("dccd_core.storage.store")

_READ_ATTEMPTS = 5


def recover_if_needed(root: Path, key: DatasetKey) -> None:
    """Finish a crashed compaction before reading (its rows are hidden meanwhile)."""
    if not has_pending_compaction(dataset_dir(root, key)):
        return
    try:
        with locked_dataset(root, key):  # waits for a compaction in progress, too
            pass
    except (OSError, StoreError) as exc:  # e.g. a read-only lake: read what is there
        logger.warning("could not finish the interrupted compaction of %s: %s", key, exc)


def files_in(root: Path, key: DatasetKey, start: int | None, end: int | None) -> list[PeriodFile]:
    """The period files a range ``[start, end)`` overlaps (either side open)."""
    if start is not None and end is not None and end <= start:
        return []
    recover_if_needed(root, key)
    files = list_period_files(root, key)
    lo = period_of(key, start) if start is not None else None
    hi = period_of(key, end - 1) if end is not None else None
    return [f for f in files if (lo is None or f.period >= lo) and (hi is None or f.period <= hi)]


def _lazy(
    key: DatasetKey, files: list[PeriodFile], start: int | None, end: int | None
) -> pl.LazyFrame:
    columns = list(empty_frame(key.data_type).columns)
    sources, options = parquet_sources(f.path for f in files)
    lazy = pl.scan_parquet(sources, hive_partitioning=False, storage_options=options)
    lazy = lazy.select(columns)
    if start is not None:
        lazy = lazy.filter(pl.col("ts") >= start)
    if end is not None:
        lazy = lazy.filter(pl.col("ts") < end)
    return lazy


def read_rows(
    root: Path, key: DatasetKey, start_ts: int | None, end_ts: int | None
) -> pl.DataFrame:
    """Rows with ``start_ts <= ts < end_ts`` (``Store.read``)."""
    folder = dataset_dir(root, key)
    for _ in range(_READ_ATTEMPTS - 1):
        frame = _read_once(root, key, start_ts, end_ts)
        # A compaction overlapping the read could hide rows from its listing or
        # replace a file it read: the read counts only if no compaction was under
        # way when it ended (the hidden copies and the journal live through the
        # whole window) and every file it read is still the same file.
        if frame is not None and not has_pending_compaction(folder):
            return frame
    try:
        with locked_dataset(root, key):  # compactions keep overlapping: hold them off
            frame = _read_once(root, key, start_ts, end_ts)
    except OSError as exc:  # a read-only lake with a crashed compaction in it
        logger.warning(
            "reading %s without its lock (%s): rows of an interrupted "
            "compaction stay hidden until a writer finishes it",
            key,
            exc,
        )
        frame = _read_once(root, key, start_ts, end_ts)
    if frame is None:
        raise StoreError(f"could not read {key}: its files changed while it was read")
    return frame


def _read_once(
    root: Path, key: DatasetKey, start_ts: int | None, end_ts: int | None
) -> pl.DataFrame | None:
    """One read, or None when a file it listed changed meanwhile (read again)."""
    files = files_in(root, key, start_ts, end_ts)
    if not files:
        return empty_frame(key.data_type)
    before = _identity(files)
    try:
        frame = _lazy(key, files, start_ts, end_ts).collect()
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        if _identity(files) != before or any(ino == 0 for _, ino, _ in before):
            return None  # a compaction replaced or hid a file since it was listed
        for period_file in files:  # name the culprit with the usual message
            read_period_frame(period_file.path)
        raise StoreError(f"could not read {key}: {exc}") from exc
    return frame if _identity(files) == before else None


def scan_rows(
    root: Path, key: DatasetKey, start_ts: int | None, end_ts: int | None
) -> pl.LazyFrame:
    """The lazy form of ``read_rows``; footers are checked now, data at the collect."""
    for attempt in range(_READ_ATTEMPTS):
        files = files_in(root, key, start_ts, end_ts)
        if not files:
            return empty_frame(key.data_type).lazy()
        try:
            for period_file in files:
                read_footer(period_file.path)
        except FileNotFoundError:  # compacted away since it was listed
            if attempt == _READ_ATTEMPTS - 1:
                raise
            continue
        break
    return _lazy(key, files, start_ts, end_ts)


def file_ts_range(path: Path, meta: pq.FileMetaData | None = None) -> tuple[int, int] | None:
    """``(min, max)`` ts of one file from its footer (None: no rows)."""
    meta = read_footer(path) if meta is None else meta
    if meta.num_rows == 0:
        return None
    bounds = ts_range_from_footer(meta)
    if bounds is None:  # no statistics (a foreign writer): read the one column
        ts = read_period_frame(path, ["ts"]).get_column("ts")
        bounds = (int(ts.min()), int(ts.max()))  # type: ignore[arg-type]
    return bounds


def period_ts_ranges(root: Path, key: DatasetKey, *, newest: bool) -> Iterator[tuple[int, int]]:
    """``(min, max)`` ts of each non-empty period (base and segments), from footers."""
    recover_if_needed(root, key)
    by_period: dict[str, list[PeriodFile]] = {}
    for period_file in list_period_files(root, key):
        by_period.setdefault(period_file.period, []).append(period_file)
    for period in sorted(by_period, reverse=newest):
        ranges = [file_ts_range(f.path) for f in by_period[period]]
        found = [r for r in ranges if r is not None]
        if found:
            yield min(r[0] for r in found), max(r[1] for r in found)


def _identity(files: list[PeriodFile]) -> list[tuple[str, int, int]]:
    """What a read saw: each file's name, inode and mtime (missing files: zeros)."""
    out = []
    for f in files:
        try:
            st = f.path.stat()
        except FileNotFoundError:
            out.append((f.path.name, 0, 0))
            continue
        out.append((f.path.name, st.st_ino, st.st_mtime_ns))
    return out
