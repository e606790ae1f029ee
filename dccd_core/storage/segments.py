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

**Crash safety of a compaction** (sources -> target, e.g. segments -> base):

1. the merged content is written to a hidden file ``.{target}.new-{tx}`` and fsynced;
2. a journal ``.{target}.compact-{tx}.json`` naming the sources is written and fsynced,
   then the folder (both entries durable);
3. each source is renamed to a hidden name ``.{source}.absorbed-{tx}``; folder fsync;
4. the hidden new file is renamed over ``target`` (``os.replace``, atomic); folder fsync;
5. the journal is deleted, then (off the commit's path) the absorbed copies.

No name that a glob reads ever holds a row that another such name holds: before
step 4 the new content is hidden; after it the sources are. A crash before step 2
leaves an orphan hidden file; after it, the journal lets the next writer (which runs
``recover`` under the dataset lock before anything else) finish steps 3-5; absorbed
copies without a journal are garbage (the journal goes only once the target holds
their rows). Between steps 3 and 4 (a few renames and one fsync in a live run) a glob
reader misses the sources' rows: never a duplicate, and after a crash there the rows
wait in the hidden copies until recovery restores them; ``Store`` reads run that
recovery first whenever a journal is present. Hidden names never end in ``.parquet``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from dccd_core.domain import ConfigError, DatasetKey, StoreError, natural_key, now_ns

from .files import fsync_dir, fsync_file, read_footer, read_period_frame, write_parquet_atomic
from .frames import merge_rows, sort_columns, storage_schema
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

logger = logging.getLogger(__name__)

_NEW = ".new-"
_ABSORBED = ".absorbed-"
_JOURNAL = ".compact-"
_JOURNAL_END = ".json"

#: The steps of a compaction, in order; tests make ``_crash_point`` raise at each.
CRASH_POINTS = (
    "new_written",
    "journal_written",
    "source_hidden",
    "target_replaced",
    "journal_deleted",
)


def _crash_point(name: str) -> None:
    """A seam for crash tests (monkeypatched to raise); does nothing in production."""


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


# -- the key index ---------------------------------------------------------------------


def _key_hashes(data_type_key: tuple[str, ...], frame: pl.DataFrame) -> np.ndarray:
    return frame.select(data_type_key).hash_rows(seed=11).to_numpy()


def _row_hashes(frame: pl.DataFrame) -> np.ndarray:
    return frame.hash_rows(seed=29).to_numpy()


class _KeyIndex:
    """Sorted key hashes with their row hashes; small additions wait in sorted runs."""

    def __init__(self, keys: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.runs: list[tuple[np.ndarray, np.ndarray]] = [(keys[order], rows[order])]

    @property
    def size(self) -> int:
        return sum(len(k) for k, _ in self.runs)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``found`` mask and the stored row hash of each key (0 where not found)."""
        found = np.zeros(len(keys), dtype=bool)
        rows = np.zeros(len(keys), dtype=np.uint64)
        for run_keys, run_rows in self.runs:
            if len(run_keys) == 0:
                continue
            at = np.minimum(np.searchsorted(run_keys, keys), len(run_keys) - 1)
            hit = (run_keys[at] == keys) & ~found
            rows[hit] = run_rows[at[hit]]
            found |= hit
        return found, rows

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.runs.append((keys[order], rows[order]))
        # Merge runs of similar size (each row is merged O(log n) times in all).
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (k2, r2), (k1, r1) = self.runs.pop(), self.runs.pop()
            at = np.searchsorted(k1, k2)
            self.runs.append((np.insert(k1, at, k2), np.insert(r1, at, r2)))


@dataclass(slots=True)
class _PeriodState:
    signature: tuple[tuple[str, int, int, int], ...]
    index: _KeyIndex
    rows: dict[str, int] = field(default_factory=dict)  # file name -> rows


class PeriodIndexCache:
    """The stored-key index of recently written periods (LRU, thread-safe).

    An entry is valid only while the period's files are exactly as this process left
    them (name, inode, mtime, size): a write by another process rebuilds it. Bounded by
    ``capacity`` periods and ``max_keys`` indexed keys (16 bytes each: the default is
    about 640 MB, e.g. ten pairs at 3M trades a day, with room for yesterday's).
    """

    def __init__(self, capacity: int = 256, max_keys: int = 40_000_000) -> None:
        self.capacity = capacity
        self.max_keys = max_keys
        self._entries: OrderedDict[tuple[Path, str], _PeriodState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, folder: Path, period: str, signature: tuple[object, ...]) -> _PeriodState | None:
        with self._lock:
            state = self._entries.get((folder, period))
            if state is None or state.signature != signature:
                return None
            self._entries.move_to_end((folder, period))
            return state

    def put(self, folder: Path, period: str, state: _PeriodState | None) -> None:
        with self._lock:
            if state is None:
                self._entries.pop((folder, period), None)
                return
            self._entries[(folder, period)] = state
            self._entries.move_to_end((folder, period))
            while len(self._entries) > 1 and (
                len(self._entries) > self.capacity
                or sum(e.index.size for e in self._entries.values()) > self.max_keys
            ):
                self._entries.popitem(last=False)


# -- listing ---------------------------------------------------------------------------


def _signature(files: Sequence[PeriodFile]) -> tuple[tuple[str, int, int, int], ...]:
    out = []
    for f in files:
        st = f.path.stat()
        out.append((f.path.name, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


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


# -- compaction transaction ---------------------------------------------------------------


def _journal_path(folder: Path, target: str, tx: str) -> Path:
    return folder / f".{target}{_JOURNAL}{tx}{_JOURNAL_END}"


def _replace_files(
    folder: Path, sources: Sequence[str], target: str, write: Callable[[Path], None]
) -> None:
    """Replace the visible files ``sources`` (``target`` may be one) by ``target``;
    ``write(path)`` writes the new content to ``path`` and fsyncs it."""
    tx = secrets.token_hex(4)
    new = folder / f".{target}{_NEW}{tx}"
    write(new)  # hidden: a crash now leaves an orphan that recovery deletes
    _crash_point("new_written")
    journal = {
        "target": target,
        "new": new.name,
        "tx": tx,
        "sources": [s for s in sources if s != target],
    }
    path = _journal_path(folder, target, tx)
    path.write_text(json.dumps(journal), encoding="utf-8")
    fsync_file(path)
    fsync_dir(folder)  # the new file and the journal are durable before any source hides
    _crash_point("journal_written")
    _finish(folder, journal)


def _finish(folder: Path, journal: Mapping[str, object]) -> None:
    """Steps 3-5 of a compaction; idempotent, so recovery simply runs it again."""
    target, new_name, tx = str(journal["target"]), str(journal["new"]), str(journal["tx"])
    sources = [str(s) for s in journal["sources"]]  # type: ignore[attr-defined]
    new = folder / new_name
    if new.exists():
        for name in sources:
            with contextlib.suppress(FileNotFoundError):
                os.replace(folder / name, folder / f".{name}{_ABSORBED}{tx}")
                _crash_point("source_hidden")
        fsync_dir(folder)  # hidden for good before the new content appears
        os.replace(new, folder / target)
        fsync_dir(folder)
        _crash_point("target_replaced")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_journal_path(folder, target, tx))
    _crash_point("journal_deleted")
    # Absorbed copies are garbage once the journal is gone (it is deleted only after
    # the target holds their rows): delete them off the commit's path.
    absorbed = [folder / f".{name}{_ABSORBED}{tx}" for name in sources]
    threading.Thread(target=_unlink_all, args=(absorbed,), daemon=True).start()


def _unlink_all(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _is_journal(name: str) -> bool:
    return name.startswith(".") and _JOURNAL in name and name.endswith(_JOURNAL_END)


def has_pending_compaction(folder: Path) -> bool:
    """Whether a compaction journal is in ``folder`` (one is running, or one crashed)."""
    try:
        return any(_is_journal(e.name) for e in os.scandir(folder))
    except FileNotFoundError:
        return False


def recover(folder: Path) -> int:
    """Finish interrupted compactions and drop leftovers; call under the dataset lock.

    Returns how many compactions were finished.
    """
    try:
        names = [e.name for e in os.scandir(folder)]
    except FileNotFoundError:
        return 0
    finished = 0
    for name in sorted(n for n in names if _is_journal(n)):
        tx = name[name.rindex(_JOURNAL) + len(_JOURNAL) : -len(_JOURNAL_END)]
        try:
            journal = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            if any(n.endswith(f"{_ABSORBED}{tx}") for n in names):
                raise StoreError(
                    f"unreadable compaction journal {folder / name}: {exc}; restore the "
                    f"files ending in '{_ABSORBED}{tx}' to their visible names (drop the "
                    "leading '.' and that suffix), then delete the journal"
                ) from exc
            # Cut off while being written: no source was hidden yet, nothing to finish.
            (folder / name).unlink()
            continue
        _finish(folder, journal)
        logger.warning(
            "finished an interrupted compaction of %s in %s", journal.get("target"), folder
        )
        finished += 1
    for name in names:
        # New content whose journal was never written, and absorbed copies (every
        # journal is finished by now, so the targets hold their rows): never visible.
        if name.startswith(".") and (_NEW in name or _ABSORBED in name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / name)
    return finished


# -- commits ---------------------------------------------------------------------------


def _read_all(files: Sequence[PeriodFile]) -> tuple[pl.DataFrame | None, dict[str, int]]:
    frames = [read_period_frame(f.path) for f in files]
    rows = {f.path.name: fr.height for f, fr in zip(files, frames, strict=True)}
    if not frames:
        return None, rows
    return (frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")), rows


def _build_state(
    key: DatasetKey, frame: pl.DataFrame, rows: dict[str, int], files: Sequence[PeriodFile]
) -> _PeriodState:
    index = _KeyIndex(_key_hashes(natural_key(key.data_type), frame), _row_hashes(frame))
    return _PeriodState(_signature(files), index, rows)


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
        _replace_files(
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
    state: _PeriodState,
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
    frame = pl.concat([read_period_frame(f.path) for f in group], how="vertical")
    frame = frame.sort(list(sort_columns(key.data_type)))
    seg = _new_segment_id(files)
    target = segment_path(root, key, period, seg)
    schema = storage_schema(key.data_type)
    _replace_files(
        target.parent,
        [f.path.name for f in group],
        target.name,
        lambda tmp: write_parquet_atomic(tmp, frame, schema, metadata, atomic=False),
    )
    for f in group:
        del state.rows[f.path.name]
    state.rows[target.name] = frame.height
    return True


def _stored_rows(files: Sequence[PeriodFile], state: _PeriodState | None) -> int:
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
) -> WriteResult:
    """Store ``frames`` (coerced rows of ``period``, arrival order; later rows win).

    Caller holds the dataset lock and has run ``recover``.
    """
    new = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    incoming = new.height
    files = _period_files(root, key, period)
    base = period_path(root, key, period)
    folder = base.parent
    state = cache.get(folder, period, _signature(files)) if files else None
    stored = _stored_rows(files, state)
    has_base = any(f.segment is None for f in files)
    closed = period_bounds(key, period)[1] <= now_ns() - int(policy.close_after_s * 1e9)
    if (
        closed
        or not has_base
        or stored < policy.min_base_rows
        or incoming * policy.rewrite_ratio > stored
    ):
        return _full_rewrite(root, key, period, files, None, new, metadata, cache, policy)
    key_cols = natural_key(key.data_type)
    if new.select(pl.struct(key_cols).n_unique()).item() != new.height:
        new = new.unique(subset=list(key_cols), keep="last", maintain_order=True)
    old: pl.DataFrame | None = None
    if state is None:
        old, rows = _read_all(files)
        assert old is not None
        state = _build_state(key, old, rows, files)
    key_h = _key_hashes(key_cols, new)
    row_h = _row_hashes(new)
    found, stored_h = state.index.lookup(key_h)
    if bool((found & (stored_h != row_h)).any()):  # a stored key with other values
        return _full_rewrite(root, key, period, files, old, new, metadata, cache, policy)
    fresh_mask = ~found
    fresh = new.filter(pl.Series(fresh_mask))
    if fresh.height == 0:
        cache.put(folder, period, state)
        return WriteResult(incoming, 0, ())
    newest = [f for f in files if f.segment is not None][-1:]
    if newest and state.rows[newest[0].path.name] + fresh.height <= policy.open_segment_rows:
        # The open segment grows: same name, replaced atomically (old rows + new keys).
        path = newest[0].path
        fresh_all = pl.concat([read_period_frame(path), fresh], how="vertical")
    else:
        path = segment_path(root, key, period, _new_segment_id(files))
        fresh_all = fresh
    fresh_all = fresh_all.sort(list(sort_columns(key.data_type)))
    write_parquet_atomic(path, fresh_all, storage_schema(key.data_type), metadata)
    state.index.add(key_h[fresh_mask], row_h[fresh_mask])
    state.rows[path.name] = fresh_all.height
    files = _period_files(root, key, period)
    segments = [f for f in files if f.segment is not None]
    seg_rows = sum(state.rows[f.path.name] for f in segments)
    base_rows = state.rows.get(base.name, 0)
    if seg_rows >= base_rows or len(segments) > policy.max_segments:
        cache.put(folder, period, None)
        merged, _ = _rewrite(root, key, period, files, None, None, metadata)
        _remember(root, key, period, merged, cache, policy)
        return WriteResult(incoming, fresh.height, (path, base))
    while _merge_segments(root, key, period, files, state, policy, metadata):
        files = _period_files(root, key, period)
    state.signature = _signature(files)
    cache.put(folder, period, state)
    return WriteResult(incoming, fresh.height, (path,))


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
    cache.put(folder, period, _build_state(key, merged, rows, files))


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
    _rewrite(root, key, period, files, None, None, metadata)
    return True
