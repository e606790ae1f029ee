"""Segments and compaction: small commits into a large period append deduplicated
segments; every reader (``Store.read``, a polars or DuckDB glob) sees each row once,
whatever interleaving of flushes, backfill commits, compactions and crashes happened."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dccd_core.domain import DatasetKey
from dccd_core.storage import SegmentPolicy, Store
from dccd_core.storage import compaction as segments_module
from dccd_core.storage.layout import dataset_dir, list_period_files, period_path

from .helpers import OHLC_1M, TRADES, ns, ohlc, trades

#: Small bounds so a handful of rows exercises every path; periods never "close".
POLICY = SegmentPolicy(
    min_base_rows=6,
    rewrite_ratio=2,
    fanout=2,
    max_segments=4,
    close_after_s=1e12,
    open_segment_rows=0,  # each commit its own segment (the open segment: its own test)
)
DAY0 = ns("2024-02-29")
DAY = 86_400 * 10**9


class SimulatedCrash(BaseException):
    """The process dies here (BaseException: nothing on the way catches it)."""


@contextlib.contextmanager
def crash_at(point: str, nth: int = 1) -> Iterator[None]:
    """Make the ``nth`` pass through compaction step ``point`` kill the 'process'."""
    seen = 0

    def hook(name: str) -> None:
        nonlocal seen
        if name == point:
            seen += 1
            if seen == nth:
                raise SimulatedCrash(point)

    original = segments_module._crash_point
    segments_module._crash_point = hook
    try:
        yield
    finally:
        segments_module._crash_point = original


def glob_read(root: Path, key: DatasetKey) -> pl.DataFrame:
    """What a foreign reader sees: every ``*.parquet`` under the data type, Hive-style."""
    pattern = str(Path(root) / key.data_type.value / "**" / "*.parquet")
    if not list((Path(root) / key.data_type.value).rglob("*.parquet")):
        return pl.DataFrame()
    return pl.scan_parquet(pattern, hive_partitioning=True).collect()


def trade_rows(ids: list[int], version: float = 1.0, day: int = 0) -> pl.DataFrame:
    """Trades ``t{day}-{i}``: ts and side fixed by the id (and day), price by version."""
    ts = [DAY0 + day * DAY + i * 10**9 for i in ids]
    rows = trades([f"t{day}-{i}" for i in ids], ts, version)
    return rows.with_columns(side=pl.Series(["buy" if i % 2 else "sell" for i in ids]))


def as_map(frame: pl.DataFrame) -> dict[str, float]:
    assert frame.get_column("trade_id").n_unique() == frame.height, "a row is stored twice"
    return dict(zip(frame["trade_id"].to_list(), frame["price"].to_list(), strict=True))


def folder_files(root: Path, key: DatasetKey) -> list[str]:
    return sorted(os.listdir(dataset_dir(root, key)))


# -- the basic mechanism -------------------------------------------------------------


def test_small_commit_into_a_large_period_appends_a_segment(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    store.write(TRADES, trade_rows(list(range(20))))
    base = period_path(tmp_path, TRADES, "2024-02-29")
    inode = base.stat().st_ino
    result = store.write(TRADES, trade_rows([18, 19, 20, 21]))  # two known, two new
    assert base.stat().st_ino == inode  # the big file was not rewritten
    files = list_period_files(tmp_path, TRADES)
    assert [f.segment is not None for f in files] == [False, True]
    assert result.rows == 4 and result.new_rows == 2
    assert pl.read_parquet(files[1].path)["trade_id"].to_list() == ["t0-20", "t0-21"]
    assert sorted(as_map(store.read(TRADES))) == sorted(f"t0-{i}" for i in range(22))
    glob = glob_read(tmp_path, TRADES)
    assert set(glob["symbol"]) == {"BTC-USDT"} and set(glob["exchange"]) == {"binance"}
    assert as_map(glob) == as_map(store.read(TRADES))


def test_the_newest_segment_grows_in_place_until_its_bound(tmp_path: Path) -> None:
    policy = SegmentPolicy(min_base_rows=6, close_after_s=1e12, open_segment_rows=5)
    store = Store(tmp_path, segments=policy)
    store.write(TRADES, trade_rows(list(range(40))))
    store.write(TRADES, trade_rows([40, 41]))
    first = [f for f in list_period_files(tmp_path, TRADES) if f.segment is not None]
    store.write(TRADES, trade_rows([41, 42, 43]))  # 2 + 2 new rows <= 5: same segment
    again = [f for f in list_period_files(tmp_path, TRADES) if f.segment is not None]
    assert [f.path for f in again] == [f.path for f in first]
    assert pl.read_parquet(again[0].path)["trade_id"].to_list() == [
        f"t0-{i}" for i in (40, 41, 42, 43)
    ]
    store.write(TRADES, trade_rows([44, 45]))  # past the bound: a new segment
    segments = [f for f in list_period_files(tmp_path, TRADES) if f.segment is not None]
    assert len(segments) == 2 and segments[0].path == first[0].path
    assert len(as_map(glob_read(tmp_path, TRADES))) == 46


def test_a_changed_row_is_merged_into_the_period_file_never_a_segment(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    store.write(TRADES, trade_rows(list(range(20))))
    store.write(TRADES, trade_rows([20]))  # a segment
    store.write(TRADES, trade_rows([3], version=2.0))  # same key, new values: newer wins
    files = list_period_files(tmp_path, TRADES)
    assert [f.segment for f in files] == [None]  # rewritten, segment absorbed
    stored = as_map(store.read(TRADES))
    assert stored["t0-3"] == 2.0 and len(stored) == 21


def test_another_process_writing_between_commits_invalidates_the_key_index(
    tmp_path: Path,
) -> None:
    mine = Store(tmp_path, segments=POLICY)
    mine.write(TRADES, trade_rows(list(range(20))))
    mine.write(TRADES, trade_rows([20]))  # index cached in `mine`
    Store(tmp_path, segments=POLICY).write(TRADES, trade_rows([21, 22]))  # "another process"
    mine.write(TRADES, trade_rows([21, 22, 23]))  # must not store 21, 22 again
    assert len(as_map(glob_read(tmp_path, TRADES))) == 24


def test_files_per_period_stay_bounded_and_compaction_empties_them(tmp_path: Path) -> None:
    policy = SegmentPolicy(
        min_base_rows=50, fanout=3, max_segments=6, close_after_s=1e12, open_segment_rows=5
    )
    store = Store(tmp_path, segments=policy)
    store.write(TRADES, trade_rows(list(range(400))))
    most = 0
    for flush in range(150):
        store.write(TRADES, trade_rows([400 + 2 * flush, 401 + 2 * flush]))
        most = max(most, len(list_period_files(tmp_path, TRADES)))
    assert most <= policy.max_segments + 1
    assert len(as_map(glob_read(tmp_path, TRADES))) == 700
    assert store.compact(TRADES) == 1
    assert [f.segment for f in list_period_files(tmp_path, TRADES)] == [None]
    assert len(as_map(glob_read(tmp_path, TRADES))) == 700


def test_compaction_keeps_the_provenance_of_what_was_written(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    stream = {"source": "binance", "transport": "ws"}
    store.write(TRADES, trade_rows(list(range(20))), provenance=stream)
    store.write(TRADES, trade_rows([20]), provenance=stream)
    store.compact(TRADES)
    meta = pq.read_schema(period_path(tmp_path, TRADES, "2024-02-29")).metadata
    assert meta[b"source"] == b"binance" and meta[b"transport"] == b"ws"
    assert b"compacted_at" in meta and b"written_at" in meta


def test_a_closed_period_is_compacted_by_the_next_commit(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    store.write(TRADES, trade_rows(list(range(20))))
    store.write(TRADES, trade_rows([20]))
    assert len(list_period_files(tmp_path, TRADES)) == 2
    closing = Store(tmp_path, segments=SegmentPolicy(min_base_rows=6, close_after_s=0))
    closing.write(TRADES, trade_rows([0], day=1))  # next day's flush closes 02-29
    assert [(f.period, f.segment) for f in list_period_files(tmp_path, TRADES)] == [
        ("2024-02-29", None),
        ("2024-03-01", None),
    ]
    assert len(as_map(closing.read(TRADES))) == 22


def test_inventory_first_last_and_coverage_see_segments(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    store.write(TRADES, trade_rows(list(range(10, 30))))
    store.write(TRADES, trade_rows([5]))  # earlier than the base's first row
    store.write(TRADES, trade_rows([40]))  # later than its last
    info = store.info(TRADES)
    assert info.rows == 22 and info.files == len(list_period_files(tmp_path, TRADES)) >= 2
    assert store.first_ts(TRADES) == DAY0 + 5 * 10**9
    assert store.last_ts(TRADES) == DAY0 + 40 * 10**9
    assert store.coverage(TRADES).ranges == ((DAY0 + 5 * 10**9, DAY0 + 40 * 10**9 + 1),)


def test_candle_segments_read_as_one_table(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=POLICY)
    minute = 60 * 10**9
    start = ns("2024-02-01")
    store.write(OHLC_1M, ohlc(start + np.arange(30) * minute))
    store.write(OHLC_1M, ohlc(start + np.arange(30, 32) * minute))
    assert len(list_period_files(tmp_path, OHLC_1M)) == 2
    assert store.read(OHLC_1M)["ts"].to_list() == list(start + np.arange(32) * minute)
    assert store.coverage(OHLC_1M).ranges == ((start, start + 32 * minute),)


def test_duckdb_reads_segments_as_the_same_partition(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    store = Store(tmp_path, segments=POLICY)
    store.write(TRADES, trade_rows(list(range(20))))
    store.write(TRADES, trade_rows([20, 21]))
    pattern = str(tmp_path / "trades" / "**" / "*.parquet")
    rows = duckdb.sql(
        f"select count(*), count(distinct trade_id), min(symbol), max(symbol) "
        f"from read_parquet('{pattern}', hive_partitioning=true)"
    ).fetchall()
    assert rows == [(22, 22, "BTC-USDT", "BTC-USDT")]


# -- crashes at every step of a compaction ---------------------------------------------


def _store_with_segments(root: Path) -> tuple[Store, dict[str, float]]:
    store = Store(root, segments=POLICY)
    store.write(TRADES, trade_rows(list(range(20))))
    store.write(TRADES, trade_rows([20]))
    store.write(TRADES, trade_rows([21, 22]))
    expected = as_map(store.read(TRADES))
    assert len(list_period_files(root, TRADES)) >= 2
    return store, expected


@pytest.mark.parametrize("point", segments_module.CRASH_POINTS)
def test_a_crash_at_any_compaction_step_loses_and_duplicates_nothing(
    tmp_path: Path, point: str
) -> None:
    store, expected = _store_with_segments(tmp_path)
    with crash_at(point), pytest.raises(SimulatedCrash):
        store.compact(TRADES)
    seen = as_map(glob_read(tmp_path, TRADES))  # as the crash left it: never a duplicate
    if point == "source_hidden":  # the one window: rows hidden, kept for recovery
        assert set(seen) <= set(expected)
        assert any(".absorbed-" in name for name in folder_files(tmp_path, TRADES))
    else:
        assert seen == expected
    reopened = Store(tmp_path, segments=POLICY)  # the next process
    assert as_map(reopened.read(TRADES)) == expected  # recovery runs first
    assert as_map(glob_read(tmp_path, TRADES)) == expected
    reopened.compact(TRADES)  # a writer: leftovers of the crash are gone
    assert as_map(glob_read(tmp_path, TRADES)) == expected
    assert not [n for n in folder_files(tmp_path, TRADES) if n.startswith(".2024")]


@pytest.mark.parametrize("point", segments_module.CRASH_POINTS)
def test_a_crash_while_a_commit_rewrites_segments_is_finished_by_the_next_commit(
    tmp_path: Path, point: str
) -> None:
    store, expected = _store_with_segments(tmp_path)
    with crash_at(point), pytest.raises(SimulatedCrash):
        store.write(TRADES, trade_rows([1], version=5.0))  # a changed row: full rewrite
    reopened = Store(tmp_path, segments=POLICY)
    reopened.write(TRADES, trade_rows([1], version=5.0))  # the retry after a restart
    assert as_map(glob_read(tmp_path, TRADES)) == {**expected, "t0-1": 5.0}


# -- any interleaving (hypothesis) -----------------------------------------------------

#: Segments on almost every small commit, merges and compactions every few commits.
PROP_POLICY = SegmentPolicy(
    min_base_rows=4,
    rewrite_ratio=1,
    fanout=2,
    max_segments=3,
    close_after_s=1e12,
    open_segment_rows=4,
)
_ids = st.lists(st.integers(0, 60), min_size=1, max_size=6)
_version = st.sampled_from([1, 1, 1, 2])  # mostly re-sent unchanged, sometimes changed
_op = st.one_of(
    st.tuples(st.just("flush"), _ids, _version, st.integers(0, 1)),
    st.tuples(st.just("backfill"), st.lists(_ids, min_size=1, max_size=4), _version),
    st.tuples(st.just("compact")),
    st.tuples(st.just("restart")),
)
_crash = st.one_of(
    st.none(), st.tuples(st.sampled_from(segments_module.CRASH_POINTS), st.integers(1, 3))
)


def _run(store: Store, kind: str, batches: list[pl.DataFrame]) -> None:
    if kind == "flush":  # a stream flush: one small commit
        store.write(TRADES, batches[0])
    elif kind == "backfill":  # pages through the buffering pipeline, bounded commits
        writer = store.writer(TRADES, commit_rows=5)
        for page in batches:
            writer.add(page)
        writer.close()
    elif kind == "compact":
        store.compact(TRADES)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_op, _crash), min_size=1, max_size=14))
@example(  # a crash between a segment and its merge; the retry has nothing new to write
    [
        (("flush", [0], 1, 0), None),
        (("backfill", [[6, 6, 7, 8, 9], [2, 3, 4, 5]], 1), ("new_written", 1)),
        (("flush", [1], 1, 0), ("new_written", 1)),
    ]
)
def test_any_interleaving_with_crashes_equals_one_merge_of_everything(
    ops: list[tuple[tuple[object, ...], tuple[str, int] | None]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store(root, segments=PROP_POLICY)
        seed = trade_rows(list(range(100, 130)))  # a "large" period file to begin with
        store.write(TRADES, seed)
        expected: dict[str, float] = as_map(seed)
        # every commit in arrival order: a later version of a key wins
        for step, (op, crash) in enumerate(ops):
            batches: list[pl.DataFrame] = []
            if op[0] == "flush":
                _, ids, version, day = op
                batches = [trade_rows(list(ids), float(version), int(day))]  # type: ignore[arg-type]
            elif op[0] == "backfill":
                _, pages, version = op
                batches = [trade_rows(list(p), float(version) + 0.5) for p in pages]  # type: ignore[union-attr]

            if op[0] == "restart":
                store = Store(root, segments=PROP_POLICY)
                continue
            if crash is not None:
                try:
                    with crash_at(*crash):
                        _run(store, str(op[0]), batches)
                except SimulatedCrash:
                    glob = glob_read(root, TRADES)
                    if glob.height:
                        as_map(glob)  # after any crash: no row twice for a glob reader
                    store = Store(root, segments=PROP_POLICY)  # a new process retries
                    _run(store, str(op[0]), batches)
            else:
                _run(store, str(op[0]), batches)
            for batch in batches:
                expected.update(as_map(batch.unique("trade_id", keep="last")))
            assert as_map(store.read(TRADES)) == expected, f"after step {step}: {op}"
        final = glob_read(root, TRADES)
        assert as_map(final) == expected if final.height else not expected
        for period in {f.period for f in list_period_files(root, TRADES)}:
            count = sum(f.period == period for f in list_period_files(root, TRADES))
            assert count <= PROP_POLICY.max_segments + 1


def test_reads_during_live_flushes_and_compactions_never_see_a_row_twice_or_lose_one(
    tmp_path: Path,
) -> None:
    import threading

    writer = Store(tmp_path, segments=POLICY)
    writer.write(TRADES, trade_rows(list(range(20))))
    done = threading.Event()
    errors: list[BaseException] = []

    def flush_forever() -> None:
        try:
            for flush in range(150):
                writer.write(TRADES, trade_rows([20 + 2 * flush, 21 + 2 * flush]))
                if flush % 25 == 24:
                    writer.compact(TRADES)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=flush_forever)
    thread.start()
    reader = Store(tmp_path, segments=POLICY)
    seen: set[str] = set()
    reads = 0
    while not done.is_set():
        now = set(as_map(reader.read(TRADES)))  # as_map: no key twice
        assert seen <= now, f"a read lost {len(seen - now)} rows an earlier read had"
        seen = now
        reads += 1
    thread.join()
    assert not errors and reads > 5
    assert len(as_map(reader.read(TRADES))) == 320
