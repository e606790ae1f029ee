"""Durable single-file I/O: atomic replace, footer reads, corrupt-file detection.

A period file is never written in place. The new content goes to a hidden temp file in
the same folder (``.{name}.tmp-{pid}-{rand}``, which matches no ``*.parquet`` glob),
is fsynced, renamed over the old file with ``os.replace`` (atomic on POSIX), and the
folder is fsynced so the rename itself survives a power cut. A reader therefore sees
the old file or the new one, never half of one; a crash leaves at most a stale temp
file, which the next write of the dataset removes while holding the dataset lock.

On an object store (``fs``, ``objectstore``) the content is written to a local temp
file and uploaded in one PUT (a multipart upload appears only when complete): the
object holds the old content or the new, and there is nothing to fsync or rename.

``read_record`` / ``write_record`` are the seam for the store's small JSON records
(coverage, and any record kept beside it): atomic on both backends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq

from dccd_core.domain import CorruptFile, StoreError

from .fs import is_object_path, list_entries
from .objectstore import ObjectPath

__all__ = [
    "atomic_write",
    "clean_stale_temps",
    "corrupt_file",
    "ensure_dir",
    "fsync_dir",
    "fsync_file",
    "read_footer",
    "read_period_frame",
    "read_period_table",
    "read_record",
    "temp_path",
    "ts_range_from_footer",
    "write_failed",
    "write_parquet_atomic",
    "write_parquet_parts",
    "write_record",
]

# ``Table.cast`` (every period write) imports pyarrow.compute on first use: ~50 ms in the
# middle of a process's first commit, under the dataset lock. Imported with us instead.
_ = pyarrow.compute

_TMP_MARK = ".tmp-"
_FIX = "delete or move it and re-run the backfill for that period"


def corrupt_file(path: Path, reason: object) -> CorruptFile:
    """The one wording of a damaged period file: what, where, and the fix."""
    text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return CorruptFile(f"corrupt period file {path}: {text}; {_FIX}")


def temp_path(path: Path) -> Path:
    """A hidden, unique temp name beside ``path`` that never matches ``*.parquet``."""
    return path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in ``folder`` durable."""
    fsync_file(folder)  # a folder is fsynced through a read-only handle like a file


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` and its missing parents, fsyncing each new entry's parent
    (nothing to do in an object store: folders are key prefixes)."""
    if is_object_path(folder):
        return
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """Make a file's (or a folder's) content durable (an object is, once PUT)."""
    if is_object_path(path):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` then durably replace ``path`` with ``tmp``; no trace on failure.

    ``tmp`` is always a local file; for an object-store ``path`` it is uploaded whole.
    """
    if isinstance(path, ObjectPath):
        _upload(path, write)
        return
    tmp = temp_path(path)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise write_failed(path, exc) from exc
        raise
    fsync_dir(path.parent)


def _upload(path: ObjectPath, write: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="dccd-upload-") as folder:
        tmp = Path(folder) / path.name
        try:
            write(tmp)
        except OSError as exc:
            raise write_failed(path, exc) from exc
        path.upload(tmp)


def read_record(path: Path) -> str | None:
    """The text of a small record file (coverage, ...), None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write_record(path: Path, text: str) -> None:
    """Replace a small record file atomically (call under the dataset lock)."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def write_failed(path: Path, exc: OSError) -> StoreError:
    """A failed period write as one clear message: the file kept its previous content."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(
            f"disk full while writing {path}: No space left on device; every committed "
            "file is intact — free some space and re-run (it resumes where it stopped)"
        )
    return StoreError(
        f"cannot write {path}: {exc.strerror or exc}; the previous file is intact — "
        "check the lake's permissions and free space, then re-run"
    )


# Encodings chosen per column name, for speed and size: sorted ns timestamps delta-pack
# to a few bits, exchange trade ids share long prefixes, "side" has two values.
_COLUMN_ENCODING = {"ts": "DELTA_BINARY_PACKED", "trade_id": "DELTA_BYTE_ARRAY"}
_DICTIONARY_COLUMNS = ("side", "level")


def _write_options(schema: pa.Schema, compression: str = "zstd") -> dict[str, Any]:
    """The ``pq.write_table`` / ``pq.ParquetWriter`` options of every period file."""
    names = set(schema.names)
    return {
        "compression": compression,
        "write_statistics": True,
        "use_dictionary": [c for c in _DICTIONARY_COLUMNS if c in names],
        "column_encoding": {c: e for c, e in _COLUMN_ENCODING.items() if c in names},
        "sorting_columns": [pq.SortingColumn(schema.get_field_index("ts"))]
        if "ts" in names
        else None,
    }


def _write_maybe_atomic(path: Path, write: Callable[[Path], None], atomic: bool) -> None:
    if not atomic and not is_object_path(path):
        try:
            write(path)
            fsync_file(path)
        except OSError as exc:
            raise write_failed(path, exc) from exc
        return
    atomic_write(path, write)


def write_parquet_atomic(
    path: Path,
    frame: pl.DataFrame,
    schema: pa.Schema,
    metadata: Mapping[str, str],
    *,
    atomic: bool = True,
    compression: str = "zstd",
) -> None:
    """Write ``frame`` as ``path`` (zstd, statistics, footer metadata), atomically.

    ``schema`` is the exact Arrow schema to store (names, types, nullability).
    ``atomic=False`` writes ``path`` in place and fsyncs it (no folder fsync): for a
    hidden file that a later, fsynced step makes visible (``segments``).
    ``compression="none"``: a file soon rewritten by a compaction (``segments``, a
    fill's segments), where zstd would be half the cost of a commit for nothing.
    """
    table = frame.to_arrow().cast(schema).replace_schema_metadata(dict(metadata))

    def write(tmp: Path) -> None:
        pq.write_table(table, tmp, **_write_options(schema, compression))

    _write_maybe_atomic(path, write, atomic)


def write_parquet_parts(
    path: Path,
    parts: Callable[[], Iterator[pl.DataFrame | pa.Table]],
    schema: pa.Schema,
    metadata: Mapping[str, str],
    *,
    atomic: bool = True,
) -> int:
    """Write the frames ``parts()`` yields, in order, as one file (one or more row
    groups each); returns its rows. Only one part is in memory at a time: a
    compaction of a big period costs its largest file, not the period. The caller
    guarantees the parts are in file order (sorted, disjoint). Options and atomicity
    as ``write_parquet_atomic``.

    The next part is read in a helper thread while the current one is encoded (both
    release the GIL): a compaction costs about its writing alone, not reading plus
    writing, for at most two parts in memory. Parts may be Arrow tables
    (``read_period_table``: no conversion from polars on the way).
    """
    schema = schema.with_metadata(dict(metadata))
    rows = 0

    def write(tmp: Path) -> None:
        nonlocal rows
        rows = 0
        source = parts()
        with (
            ThreadPoolExecutor(1, thread_name_prefix="dccd-compact-read") as pool,
            pq.ParquetWriter(tmp, schema, **_write_options(schema)) as writer,
        ):
            ahead = pool.submit(next, source, None)
            while (part := ahead.result()) is not None:
                ahead = pool.submit(next, source, None)
                table = part if isinstance(part, pa.Table) else part.to_arrow()
                if not table.schema.equals(schema, check_metadata=False):
                    table = table.cast(schema)
                writer.write_table(table)
                rows += table.num_rows

    _write_maybe_atomic(path, write, atomic)
    return rows


def clean_stale_temps(folder: Path) -> int:
    """Remove temp files left in ``folder`` by crashed writers; call under the lock.

    Every writer of a dataset holds its lock while its temp file exists, so under
    that lock any temp file is a leftover.
    """
    removed = 0
    for entry in list_entries(folder):
        if entry.name.startswith(".") and _TMP_MARK in entry.name:
            with contextlib.suppress(FileNotFoundError):
                (folder / entry.name).unlink()
                removed += 1
    return removed


def _check_reachable(path: Path) -> None:
    """Before calling an object corrupt: a bucket that cannot be reached (or an object
    gone since it was listed) is said as such (``StoreError``, ``FileNotFoundError``)."""
    if isinstance(path, ObjectPath):
        path.stat()


def read_footer(path: Path) -> pq.FileMetaData:
    """The Parquet footer of ``path`` (row counts, statistics, key/value metadata)."""
    try:
        if isinstance(path, ObjectPath):
            with path.open_ranges() as handle:
                return pq.read_metadata(handle)
        return pq.read_metadata(path)
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        _check_reachable(path)
        raise corrupt_file(path, exc) from exc


def read_period_frame(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """Read one period file (or some columns); any decoding failure is a ``CorruptFile``."""
    try:
        if isinstance(path, ObjectPath):
            return pl.read_parquet(path.url, columns=columns, storage_options=path.storage_options)
        return pl.read_parquet(path, columns=columns)
    except FileNotFoundError:
        raise
    except (OSError, pl.exceptions.PolarsError, pa.ArrowException, ValueError) as exc:
        _check_reachable(path)
        raise corrupt_file(path, exc) from exc


def read_period_table(path: Path) -> pa.Table:
    """A whole period file as an Arrow table, the types as stored (a compaction copies
    files: reading them through pyarrow skips polars' conversion, ~2.5x faster on a
    day of trades); any decoding failure is a ``CorruptFile``."""
    if isinstance(path, ObjectPath):
        return read_period_frame(path).to_arrow()
    try:
        with pq.ParquetFile(path) as handle:  # this file alone: no dataset discovery
            return handle.read()
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise corrupt_file(path, exc) from exc


def ts_range_from_footer(meta: pq.FileMetaData, column: str = "ts") -> tuple[int, int] | None:
    """``(min, max)`` of ``column`` from the row-group statistics; None if unknown/empty."""
    schema = meta.schema.to_arrow_schema()
    index = schema.get_field_index(column)
    if index < 0 or meta.num_rows == 0:
        return None
    lo: int | None = None
    hi: int | None = None
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        if group.num_rows == 0:
            continue
        stats = group.column(index).statistics
        if stats is None or not stats.has_min_max:
            return None
        lo = stats.min if lo is None else min(lo, stats.min)
        hi = stats.max if hi is None else max(hi, stats.max)
    if lo is None or hi is None:
        return None
    return int(lo), int(hi)
