"""One period's files: commits as merge-rewrites or segments, and crash-safe compaction.

A period ``P`` of a dataset is stored as a base file ``P.parquet`` and zero or more
segments ``P.seg-{id}.parquet`` beside it. Every ``*.parquet`` glob (polars, DuckDB,
pyarrow, ``Store.read``) reads them as one Hive partition.

**No row is stored twice, by construction.** A segment holds only rows whose natural
key is in none of the period's other files. The writer keeps, per open period, an index
of the stored keys (64-bit hashes of the key and of the whole row, sorted arrays): a
small commit is split into rows already stored identically (dropped), rows with new
keys (the segment) and rows whose key is stored with other values. The last kind
("the newer row wins", e.g. a re-stamped candle) cannot go to a segment: that commit
becomes a merge-rewrite of the whole period (base + segments + new rows -> base).
A hash collision can only send a commit down that rewrite path, which merges on the
real keys, so it costs time, never a row.

**When a segment, when a rewrite** (``SegmentPolicy``): periods below
``min_base_rows`` stored rows, closed periods (ended ``close_after_s`` ago), and
commits whose rows exceed ``1/rewrite_ratio`` of the stored rows, are merge-rewrites
(cheap, or amortised over many rows). Anything else appends a segment, whose cost
depends on the commit, not on the period's size.

**The open segment.** The newest segment takes the next small commits until it holds
``open_segment_rows``: it is rewritten whole under its own name (``os.replace``, so a
reader sees it before or after, each row once). A flush costs one small file either way,
and a minute of flushes makes one segment, so merges of segments stay rare.

**Bounded files per partition.** Segments of about the same size (the same power of
``fanout`` rows) are merged into one once ``fanout`` of them exist; all segments are
merged into the base once they hold as many rows as the base (so the base at least
doubles each time and the total rewrite cost stays linear), when there are more than
``max_segments``, and when the period is closed.

**Filling a closed period.** A backfill commits a big day in bounded pieces (memory,
and a kill loses at most the uncommitted tail). Merge-rewriting a closed period per
commit would make the day cost (rows / commit)^2 / 2 rows written. A commit marked
``filling`` (the writer has more rows of this period to come and compacts it when the
fill ends, ``commit.Committer``) appends a deduplicated segment like an open period's
flush, and skips the rewrites whose only purpose is to keep an open period's files
few (``rewrite_ratio``, segments outgrowing the base, tier merges below
``max_segments`` segments): one compaction follows. Past ``max_segments`` the tier
merges run, so files stay bounded; a crash between commits leaves base + segments,
which read as one table and are compacted by the next writer. A fill's segments are
written uncompressed (the compaction encodes their rows again, zstd, once). That
compaction streams the files into the base one at a time when their ts ranges do not
overlap (a backfill's segments each hold a later stretch of the day): its memory is
the largest file, not the day.

Compactions replace files crash-safely through ``compaction``; the index of stored
keys lives in ``key_index``. This module decides and performs the commits.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from dccd_core.domain import ConfigError, DatasetKey, natural_key, now_ns

from .compaction import CRASH_POINTS, has_pending_compaction, recover, replace_files
from .files import (
    read_footer,
    read_period_frame,
    read_period_table,
    ts_range_from_footer,
    write_parquet_atomic,
    write_parquet_parts,
)
from .frames import is_unique, merge_rows, sort_columns, storage_schema
from .key_index import (
    PeriodIndexCache,
    PeriodState,
    build_state,
    files_signature,
    key_hashes,
    row_hashes,
)
from .layout import PeriodFile, list_period_files, period_bounds, period_path, segment_path
from .results import WriteResult

__all__ = [
    "CRASH_POINTS",
    "PeriodIndexCache",
    "SegmentPolicy",
    "commit_period",
    "compact_period",
    "has_pending_compaction",
    "recover",
]


@dataclass(frozen=True, slots=True)
class SegmentPolicy:
    """When a commit appends a segment and when segments are compacted (module doc)."""

    min_base_rows: int = 20_000
    rewrite_ratio: int = 4
    fanout: int = 8
    max_segments: int = 32
    #: The newest segment takes the next commits (rewritten whole, atomically, under
    #: its own name) until it holds this many rows: a minute of a busy pair's flushes
    #: make one file, so merges of segments are rare. 0: every commit is a new segment.
    open_segment_rows: int = 2_048
    #: A period whose end is this far in the past is closed: its segments are compacted.
    close_after_s: float = 600.0

    def __post_init__(self) -> None:
        if (
            self.min_base_rows < 1
            or self.rewrite_ratio < 1
            or self.fanout < 2
            or self.open_segment_rows < 0
        ):
            raise ConfigError(f"invalid segment policy {self!r}")
        if self.max_segments < self.fanout:
            raise ConfigError("max_segments must be >= fanout")


def _period_files(root: Path, key: DatasetKey, period: str) -> list[PeriodFile]:
    return list_period_files(root, key, period=period)


def _new_segment_id(taken: Sequence[PeriodFile]) -> str:
    """Ids sort by creation time (ns, base 36) and never repeat within the folder."""
    used = {f.segment for f in taken}
    stamp = time.time_ns()
    while True:
        seg = np.base_repr(stamp, 36).lower().rjust(13, "0")
        if seg not in used:
            return seg
        stamp += 1


# -- commits ---------------------------------------------------------------------------


def _read_all(files: Sequence[PeriodFile]) -> tuple[pl.DataFrame | None, dict[str, int]]:
    frames = [read_period_frame(f.path) for f in files]
    rows = {f.path.name: fr.height for f, fr in zip(files, frames, strict=True)}
    if not frames:
        return None, rows
    return (frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")), rows


def _rewrite(
    root: Path,
    key: DatasetKey,
    period: str,
    files: Sequence[PeriodFile],
    old: pl.DataFrame | None,
    new: pl.DataFrame | None,
    metadata: Mapping[str, str],
) -> tuple[pl.DataFrame, int]:
    """Merge every file of the period and ``new`` into the base; returns (merged, before)."""
    if old is None and files:
        old, _ = _read_all(files)
    before = 0 if old is None else old.height
    if new is None:
        assert old is not None
        merged = merge_rows(key.data_type, None, old)
    else:
        merged = merge_rows(key.data_type, old, new)
    base = period_path(root, key, period)
    schema = storage_schema(key.data_type)
    segments = [f.path.name for f in files if f.segment is not None]
    if not segments:
        write_parquet_atomic(base, merged, schema, metadata)
    else:
        replace_files(
            base.parent,
            segments,
            base.name,
            lambda tmp: write_parquet_atomic(tmp, merged, schema, metadata, atomic=False),
        )
    return merged, before


def _tier(rows: int, fanout: int) -> int:
    return int(math.log(max(rows, 1), fanout))


def _merge_segments(
    root: Path,
    key: DatasetKey,
    period: str,
    files: list[PeriodFile],
    state: PeriodState,
    policy: SegmentPolicy,
    metadata: Mapping[str, str],
) -> bool:
    """Merge same-tier segments (fanout of them) into one; True when files changed."""
    segments = [f for f in files if f.segment is not None]
    tiers: dict[int, list[PeriodFile]] = {}
    for f in segments:
        tiers.setdefault(_tier(state.rows[f.path.name], policy.fanout), []).append(f)
    group = next((g for _, g in sorted(tiers.items()) if len(g) >= policy.fanout), None)
    if group is None:
        return False
    group = group[: policy.fanout]  # the oldest: a fill's pile of segments merges in steps
    # The merged segment takes the oldest source's name (``replace_files`` replaces it
    # last): it sorts where its rows were, so a listing of base + segments still reads
    # in ts order while a backfill fills the period.
    target = group[0].path
    schema = storage_schema(key.data_type)
    ordered = _in_file_order(group)
    if ordered is not None:  # a stretch of a fill: streamed, one segment in memory
        rows = sum(state.rows[f.path.name] for f in group)
        write = _parts_writer(ordered, schema, metadata)
    else:
        frame = pl.concat([read_period_frame(f.path) for f in group], how="vertical")
        frame = frame.sort(list(sort_columns(key.data_type)))
        rows = frame.height

        def write(tmp: Path) -> None:
            write_parquet_atomic(tmp, frame, schema, metadata, atomic=False)

    replace_files(target.parent, [f.path.name for f in group], target.name, write)
    for f in group:
        del state.rows[f.path.name]
    state.rows[target.name] = rows
    return True


def _stored_rows(files: Sequence[PeriodFile], state: PeriodState | None) -> int:
    if state is not None:
        return sum(state.rows.values())
    return sum(read_footer(f.path).num_rows for f in files)


def commit_period(
    root: Path,
    key: DatasetKey,
    period: str,
    frames: Sequence[pl.DataFrame],
    metadata: Mapping[str, str],
    *,
    cache: PeriodIndexCache,
    policy: SegmentPolicy,
    filling: bool = False,
) -> WriteResult:
    """Store ``frames`` (coerced rows of ``period``, arrival order; later rows win).

    ``filling``: the caller has more rows of this period to come and compacts it once
    they are in (``Committer``: the period a backfill is filling). A closed period then
    takes segments too, and is not merged into its base before that compaction: each
    bounded commit costs its own rows, not the period's (module doc, "Filling").
    Caller holds the dataset lock and has run ``recover``.
    """
    new = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    incoming = new.height
    files = _period_files(root, key, period)
    base = period_path(root, key, period)
    folder = base.parent
    state = cache.get(folder, period, files_signature(files)) if files else None
    stored = _stored_rows(files, state)
    has_base = any(f.segment is None for f in files)
    closed = period_bounds(key, period)[1] <= now_ns() - int(policy.close_after_s * 1e9)
    deferred = filling and closed  # one compaction follows the fill: no rewrite before it
    if (
        (closed and not deferred)
        or not has_base
        or stored < policy.min_base_rows
        or (incoming * policy.rewrite_ratio > stored and not deferred)
    ):
        return _full_rewrite(root, key, period, files, None, new, metadata, cache, policy)
    key_cols = natural_key(key.data_type)
    key_h = key_hashes(key_cols, new)
    order = np.argsort(key_h)  # once: the duplicate test, the lookup, the add
    # distinct key hashes are distinct keys: the rows are compared only on a repeat
    sorted_h = key_h[order]
    if bool((sorted_h[1:] == sorted_h[:-1]).any()) and not is_unique(new, key_cols):
        new = new.unique(subset=list(key_cols), keep="last", maintain_order=True)
        key_h = key_hashes(key_cols, new)
        order = np.argsort(key_h)
    old: pl.DataFrame | None = None
    if state is None:
        old, rows = _read_all(files)
        assert old is not None
        state = build_state(key, old, rows, files)
    row_h = row_hashes(new)
    found, stored_h = state.index.lookup(key_h, order)
    if bool((found & (stored_h != row_h)).any()):  # a stored key with other values
        return _full_rewrite(root, key, period, files, old, new, metadata, cache, policy)
    fresh_mask = ~found
    fresh = new.filter(pl.Series(fresh_mask))
    written: tuple[Path, ...] = ()
    if fresh.height:
        written = (
            _append(root, key, period, files, fresh, state, policy, metadata, transient=deferred),
        )
        fresh_sorted = order[fresh_mask[order]]
        state.index.add(key_h[fresh_sorted], row_h[fresh_sorted], presorted=True)
        files = _period_files(root, key, period)
    # Bounds are kept even when nothing was new: a retry after a crash between a
    # segment and its merge finds its rows stored and must still do the merge.
    segments = [f for f in files if f.segment is not None]
    seg_rows = sum(state.rows[f.path.name] for f in segments)
    base_rows = state.rows.get(base.name, 0)
    if deferred:  # merge segments only past the bound: the fill's compaction follows
        while len(segments) >= policy.max_segments and _merge_segments(
            root, key, period, files, state, policy, metadata
        ):
            files = _period_files(root, key, period)
            segments = [f for f in files if f.segment is not None]
    if (seg_rows >= base_rows and not deferred) or len(segments) > policy.max_segments:
        cache.put(folder, period, None)
        merged, _ = _rewrite(root, key, period, files, None, None, metadata)
        _remember(root, key, period, merged, cache, policy)
        return WriteResult(incoming, fresh.height, (*written, base))
    while not deferred and _merge_segments(root, key, period, files, state, policy, metadata):
        files = _period_files(root, key, period)
    state.signature = files_signature(files)
    cache.put(folder, period, state)
    return WriteResult(incoming, fresh.height, written)


def _append(
    root: Path,
    key: DatasetKey,
    period: str,
    files: Sequence[PeriodFile],
    fresh: pl.DataFrame,
    state: PeriodState,
    policy: SegmentPolicy,
    metadata: Mapping[str, str],
    *,
    transient: bool = False,
) -> Path:
    """Write ``fresh`` (rows with new keys) as a segment; returns its path.

    ``transient``: the segment of a fill, rewritten by the compaction that ends it
    (module doc, "Filling"): stored uncompressed, since zstd-encoding rows twice was a
    third of a fill's commit time (a 2M-trade day: 18 segments, 0.48 -> 0.27 s of
    writing, ~2x the bytes on disk until the compaction, which zstd-encodes them once).
    A crash between the two leaves valid, uncompressed segments that the next writer's
    compaction of the closed period encodes the same way."""
    newest = [f for f in files if f.segment is not None][-1:]
    if newest and state.rows[newest[0].path.name] + fresh.height <= policy.open_segment_rows:
        # The open segment grows: same name, replaced atomically (old rows + new keys).
        path = newest[0].path
        fresh_all = pl.concat([read_period_frame(path), fresh], how="vertical")
    else:
        path = segment_path(root, key, period, _new_segment_id(files))
        fresh_all = fresh
    if not _in_sort_order(fresh_all, key):
        fresh_all = fresh_all.sort(list(sort_columns(key.data_type)))
    write_parquet_atomic(
        path,
        fresh_all,
        storage_schema(key.data_type),
        metadata,
        compression="none" if transient else "zstd",
    )
    state.rows[path.name] = fresh_all.height
    return path


def _in_sort_order(frame: pl.DataFrame, key: DatasetKey) -> bool:
    """Whether ``frame`` is in ``sort_columns`` order already (a backfill's rows usually
    are: its sort was ~4 ms of each 100k-trade commit): ts never falls, and where it
    repeats, the rest of a one-column key (a trade id) does not fall either."""
    ts = frame.get_column("ts")
    if ts.len() < 2:
        return True
    step = ts.diff().slice(1)
    if bool((step > 0).all()):
        return True
    rest = sort_columns(key.data_type)[1:]
    if len(rest) != 1 or not bool((step >= 0).all()):
        return False
    tie = pl.concat([pl.Series([False]), step == 0])
    column = frame.get_column(rest[0])
    return bool((column.filter(tie) >= column.shift(1).filter(tie)).all())


def _remember(
    root: Path,
    key: DatasetKey,
    period: str,
    merged: pl.DataFrame,
    cache: PeriodIndexCache,
    policy: SegmentPolicy,
) -> None:
    """Index a freshly rewritten period when later commits may append segments to it."""
    folder = period_path(root, key, period).parent
    if merged.height < policy.min_base_rows:
        cache.put(folder, period, None)
        return
    files = _period_files(root, key, period)
    rows = {f.path.name: merged.height for f in files}
    cache.put(folder, period, build_state(key, merged, rows, files))


def _full_rewrite(
    root: Path,
    key: DatasetKey,
    period: str,
    files: Sequence[PeriodFile],
    old: pl.DataFrame | None,
    new: pl.DataFrame,
    metadata: Mapping[str, str],
    cache: PeriodIndexCache,
    policy: SegmentPolicy,
) -> WriteResult:
    folder = period_path(root, key, period).parent
    cache.put(folder, period, None)
    merged, before = _rewrite(root, key, period, files, old, new, metadata)
    _remember(root, key, period, merged, cache, policy)
    return WriteResult(new.height, merged.height - before, (period_path(root, key, period),))


def compact_period(
    root: Path,
    key: DatasetKey,
    period: str,
    metadata: Mapping[str, str] | None,
    cache: PeriodIndexCache,
) -> bool:
    """Merge the period's segments into its base; caller holds the lock. True if any.

    ``metadata=None`` keeps the provenance of the newest file (a segment's, else the
    period file's), with ``compacted_at`` added.
    """
    files = _period_files(root, key, period)
    if not any(f.segment is not None for f in files):
        return False
    if metadata is None:
        raw = read_footer(files[-1].path).metadata or {}
        metadata = {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW")}
        metadata["compacted_at"] = (
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    folder = period_path(root, key, period).parent
    cache.put(folder, period, None)
    ordered = _in_file_order(files)
    if ordered is None:
        _rewrite(root, key, period, files, None, None, metadata)
    else:
        _concat_into_base(root, key, period, files, ordered, metadata)
    return True


def _in_file_order(files: Sequence[PeriodFile]) -> list[PeriodFile] | None:
    """The non-empty files ordered by ts when their ts ranges (footers) do not overlap,
    else None. Each file is sorted and no key is in two files (module doc), so these
    files one after the other are the merged period: the usual shape of a filled day,
    whose segments each hold a later stretch of it."""
    ranged = []
    for f in files:
        meta = read_footer(f.path)
        if meta.num_rows == 0:
            continue
        bounds = ts_range_from_footer(meta)
        if bounds is None:
            return None
        ranged.append((bounds, f))
    ranged.sort(key=lambda item: item[0])
    for (prev, _), (cur, _) in itertools.pairwise(ranged):
        if cur[0] <= prev[1]:
            return None
    return [f for _, f in ranged]


def _concat_into_base(
    root: Path,
    key: DatasetKey,
    period: str,
    files: Sequence[PeriodFile],
    ordered: Sequence[PeriodFile],
    metadata: Mapping[str, str],
) -> None:
    """Compact by streaming ``ordered`` into the base one file at a time (crash-safe
    like ``_rewrite``): memory is the largest file, not the whole period."""
    base = period_path(root, key, period)
    write = _parts_writer(ordered, storage_schema(key.data_type), metadata)
    replace_files(
        base.parent, [f.path.name for f in files if f.segment is not None], base.name, write
    )


def _parts_writer(
    ordered: Sequence[PeriodFile], schema: pa.Schema, metadata: Mapping[str, str]
) -> Callable[[Path], None]:
    """``replace_files``' writer of ``ordered`` (sorted, disjoint files) as one file."""

    def parts() -> Iterator[pa.Table]:
        for f in ordered:
            yield read_period_table(f.path)

    def write(tmp: Path) -> None:
        write_parquet_parts(tmp, parts, schema, metadata, atomic=False)

    return write
