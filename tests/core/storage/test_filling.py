"""A backfill filling a closed day in bounded commits (issue 12): segments, then one
compaction. Whatever the chunking, the day ends with the rows one commit would have
stored; a crash between commits leaves readable, deduplicated data and a re-run
converges. Commits are made as the backfill's commit loop makes them: rows added,
``cover`` up to what they reach, ``flush``."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dccd_core.storage import SegmentPolicy, Store
from dccd_core.storage import compaction as compaction_module
from dccd_core.storage import segments as segments_module
from dccd_core.storage.layout import list_period_files

from .helpers import TRADES
from .test_segments import DAY, DAY0, SimulatedCrash, as_map, crash_at, glob_read, trade_rows

#: Small bounds so a few dozen rows take every path; 2024-02-29 is long closed.
POLICY = SegmentPolicy(
    min_base_rows=4, rewrite_ratio=2, fanout=3, max_segments=4, open_segment_rows=0
)


def _backfill(store: Store, chunks: list[pl.DataFrame]) -> None:
    """The commit loop's pattern: one bounded commit per chunk, coverage after it."""
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as writer:
        for chunk in chunks:
            _commit(writer, chunk)


def _commit(writer: object, chunk: pl.DataFrame) -> None:
    writer.add(chunk)  # type: ignore[attr-defined]
    writer.cover(DAY0, int(chunk.get_column("ts").max()) + 1)  # type: ignore[attr-defined]
    writer.flush()  # type: ignore[attr-defined]


def _layout(root: Path) -> list[tuple[str, bool]]:
    return [(f.period, f.segment is None) for f in list_period_files(root, TRADES)]


def test_bounded_commits_into_a_closed_day_append_segments_then_compact_once(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, segments=POLICY)
    chunks = [trade_rows(list(range(lo, lo + 10))) for lo in range(0, 60, 10)]
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as writer:
        for chunk in chunks:
            _commit(writer, chunk)
        # while filling: the base and segments, never a rewrite of the day per commit
        assert sum(not is_base for _, is_base in _layout(tmp_path)) >= 2
        assert as_map(glob_read(tmp_path, TRADES)) == {f"t0-{i}": 1.0 for i in range(60)}
    assert _layout(tmp_path) == [("2024-02-29", True)]  # closing compacted it
    stored = store.read(TRADES)
    assert as_map(stored) == {f"t0-{i}": 1.0 for i in range(60)}
    assert stored.get_column("ts").is_sorted()


def test_the_previous_day_is_compacted_once_the_writer_moves_on(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as writer:
        for lo in range(0, 40, 10):
            _commit(writer, trade_rows(list(range(lo, lo + 10))))
        _commit(writer, trade_rows([0, 1, 2], day=1))  # the next day's first commit
        assert _layout(tmp_path) == [("2024-02-29", True), ("2024-03-01", True)]
    assert len(store.read(TRADES)) == 43


def test_a_changed_row_while_filling_wins_and_is_stored_once(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    _backfill(
        store,
        [
            trade_rows(list(range(10))),
            trade_rows(list(range(10, 20))),
            trade_rows([3, 20, 21], version=2.0),  # re-stamped row 3: the later row wins
            trade_rows(list(range(22, 30))),
        ],
    )
    expected = {f"t0-{i}": 1.0 for i in range(30)} | {f"t0-{i}": 2.0 for i in (3, 20, 21)}
    assert as_map(store.read(TRADES)) == expected
    assert as_map(glob_read(tmp_path, TRADES)) == expected


_event = st.tuples(st.integers(0, 40), st.sampled_from([1.0, 1.0, 1.0, 2.0]), st.integers(0, 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(_event, min_size=1, max_size=60),
    cuts=st.lists(st.integers(1, 59), max_size=8),
    ascending=st.booleans(),
)
def test_any_chunking_of_a_fill_equals_one_commit(
    events: list[tuple[int, float, int]], cuts: list[int], ascending: bool
) -> None:
    if ascending:  # a backfill's order; otherwise re-sent and out-of-order rows too
        events = sorted(events, key=lambda e: (e[2], e[0]))
    rows = pl.concat([trade_rows([i], version, day) for i, version, day in events])
    bounds = sorted({0, rows.height, *(c for c in cuts if c < rows.height)})
    chunks = [rows.slice(lo, hi - lo) for lo, hi in itertools.pairwise(bounds)]
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        Store(one, segments=POLICY).write(TRADES, rows)
        _backfill(Store(many, segments=POLICY), chunks)
        truth = Store(one).read(TRADES)
        got = Store(many).read(TRADES)
        assert got.equals(truth)  # same rows, same order (later rows won the same way)
        assert as_map(glob_read(Path(many), TRADES)) == as_map(truth)
        assert all(is_base for _, is_base in _layout(Path(many)))  # compacted
        covered = Store(many).coverage(TRADES).ranges
        assert covered[0][0] == DAY0 and covered[-1][1] == int(rows["ts"].max()) + 1


def test_a_kill_between_commits_leaves_deduplicated_rows_and_a_rerun_converges(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, segments=POLICY)
    chunks = [trade_rows(list(range(lo, lo + 10))) for lo in range(0, 60, 10)]
    writer = store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf"))
    for chunk in chunks[:4]:
        _commit(writer, chunk)
    writer.add(chunks[4])  # buffered, never committed: the process is killed here
    del writer  # no close, no flush: what kill -9 leaves

    durable = {f"t0-{i}": 1.0 for i in range(40)}
    again = Store(tmp_path, segments=POLICY)  # the next process
    assert any(not is_base for _, is_base in _layout(tmp_path))  # base + segments
    assert as_map(again.read(TRADES)) == durable
    assert as_map(glob_read(tmp_path, TRADES)) == durable
    # coverage says only what is durable: the killed tail is a hole to fetch again
    end = DAY0 + 60 * 10**9
    assert again.holes(TRADES, DAY0, end) == [(DAY0 + 39 * 10**9 + 1, end)]

    _backfill(again, chunks)  # the re-run re-sends everything
    assert as_map(again.read(TRADES)) == {f"t0-{i}": 1.0 for i in range(60)}
    assert _layout(tmp_path) == [("2024-02-29", True)]
    assert again.holes(TRADES, DAY0, end - 10**9 + 1) == []


@pytest.mark.parametrize("point", compaction_module.CRASH_POINTS)
def test_a_crash_in_the_fills_compaction_loses_and_duplicates_nothing(
    tmp_path: Path, point: str
) -> None:
    store = Store(tmp_path, segments=POLICY)
    chunks = [trade_rows(list(range(lo, lo + 10))) for lo in range(0, 50, 10)]
    expected = {f"t0-{i}": 1.0 for i in range(50)}
    writer = store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf"))
    for chunk in chunks:
        _commit(writer, chunk)
    with crash_at(point), pytest.raises(SimulatedCrash):
        writer.close()  # the one compaction of the filled day (streamed: disjoint files)
    seen = as_map(glob_read(tmp_path, TRADES))  # never a duplicate, even mid-crash
    assert set(seen) <= set(expected)
    again = Store(tmp_path, segments=POLICY)
    assert as_map(again.read(TRADES)) == expected  # recovery finishes the compaction
    again.compact(TRADES, closed_only=True)
    assert _layout(tmp_path) == [("2024-02-29", True)]
    assert as_map(glob_read(tmp_path, TRADES)) == expected
    assert again.read(TRADES).get_column("ts").is_sorted()


def test_a_fill_does_not_hold_off_the_compaction_of_other_closed_days(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    _backfill(store, [trade_rows(list(range(lo, lo + 10)), day=1) for lo in (0, 10)])
    # another day of segments left by a killed writer
    writer = store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf"))
    for lo in (0, 10, 20):
        _commit(writer, trade_rows(list(range(lo, lo + 10))))
    del writer
    assert any(not is_base for _, is_base in _layout(tmp_path))
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as filling:
        _commit(filling, trade_rows([30, 31], day=1))  # filling 03-01; 02-29 compacts
        assert [p for p, is_base in _layout(tmp_path) if not is_base] in ([], ["2024-03-01"])
    assert _layout(tmp_path) == [("2024-02-29", True), ("2024-03-01", True)]
    assert len(store.read(TRADES)) == 30 + 22
    assert int(store.read(TRADES)["ts"].max()) == DAY0 + DAY + 31 * 10**9


def test_a_long_fill_keeps_the_files_bounded_by_merging_the_oldest_segments(
    tmp_path: Path,
) -> None:
    policy = SegmentPolicy(min_base_rows=4, fanout=2, max_segments=4, open_segment_rows=0)
    store = Store(tmp_path, segments=policy)
    counts = []
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as writer:
        for lo in range(0, 150, 10):
            _commit(writer, trade_rows(list(range(lo, lo + 10))))
            counts.append(len(_layout(tmp_path)))
            assert store.read(TRADES).get_column("ts").is_sorted()  # merged in place
            assert as_map(glob_read(tmp_path, TRADES)) == {f"t0-{i}": 1.0 for i in range(lo + 10)}
    assert max(counts) <= 1 + policy.max_segments
    assert _layout(tmp_path) == [("2024-02-29", True)]
    stored = store.read(TRADES)
    assert as_map(stored) == {f"t0-{i}": 1.0 for i in range(150)}
    assert stored.get_column("ts").is_sorted()


def test_the_fill_reports_the_days_file_not_its_passing_segments(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as writer:
        for lo in range(0, 50, 10):
            _commit(writer, trade_rows(list(range(lo, lo + 10))))
    assert [p.name for p in writer.result.files] == ["2024-02-29.parquet"]
    assert writer.result.new_rows == 50
    assert all(p.exists() for p in writer.result.files)


def _codecs(path: Path) -> set[str]:
    meta = pq.read_metadata(path)
    return {
        meta.row_group(g).column(c).compression
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    }


def test_a_fills_segments_are_uncompressed_and_its_compacted_day_is_zstd(
    tmp_path: Path,
) -> None:
    """A fill's segments live until its compaction (which encodes every row again):
    they are written uncompressed, the day's file zstd as every period file."""
    store = Store(tmp_path, segments=POLICY)
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as writer:
        for lo in range(0, 30, 10):
            _commit(writer, trade_rows(list(range(lo, lo + 10))))
        files = list_period_files(tmp_path, TRADES)
        segments = [f.path for f in files if f.segment is not None]
        assert segments and all(_codecs(p) == {"UNCOMPRESSED"} for p in segments)
        assert as_map(glob_read(tmp_path, TRADES)) == {f"t0-{i}": 1.0 for i in range(30)}
    (day,) = list_period_files(tmp_path, TRADES)
    assert _codecs(day.path) == {"ZSTD"}
    assert as_map(store.read(TRADES)) == {f"t0-{i}": 1.0 for i in range(30)}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 30)),
        min_size=0,
        max_size=12,
        unique_by=lambda t: t[1],
    )
)
def test_rows_found_in_sort_order_are_in_sort_order(pairs: list[tuple[int, int]]) -> None:
    """``_in_sort_order`` (which lets a segment skip its sort) never says yes to rows a
    sort would move: ts (with repeats) then the trade id as text."""
    frame = trade_rows([i for _, i in pairs]).with_columns(
        ts=pl.Series([DAY0 + t for t, _ in pairs], dtype=pl.Int64)
    )
    ordered = frame.sort(["ts", "trade_id"])
    if segments_module._in_sort_order(frame, TRADES):
        assert frame.equals(ordered)
    assert segments_module._in_sort_order(ordered, TRADES)
