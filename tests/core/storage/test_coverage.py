"""Coverage: fetched ranges (with or without rows), holes, persistence, rebuild."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dccd_core.domain import ConfigError
from dccd_core.storage import Coverage, Store
from dccd_core.storage.layout import coverage_path

from .helpers import OHLC_1M, TRADES, ns, ohlc, trades

MIN = 60 * 10**9


def test_merge_overlapping_and_adjacent() -> None:
    cov = Coverage().add(10, 20).add(30, 40).add(20, 25).add(35, 50).add(5, 5)
    assert cov.ranges == ((10, 25), (30, 50))
    assert cov.holes(0, 60) == [(0, 10), (25, 30), (50, 60)]
    assert cov.holes(12, 24) == []
    assert cov.holes(12, 32) == [(25, 30)]
    assert cov.holes(7, 7) == []
    assert cov.covers(30, 50) and not cov.covers(29, 50)
    assert cov.start == 10 and cov.end == 50
    with pytest.raises(ConfigError):
        cov.add(5, 4)
    with pytest.raises(ConfigError):
        cov.holes(5, 4)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(0, 30)), max_size=12),
    st.integers(0, 130),
    st.integers(0, 130),
)
def test_holes_are_the_exact_complement(ranges: list[tuple[int, int]], a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    cov = Coverage()
    for lo, width in ranges:
        cov = cov.add(lo, lo + width)
    covered = {t for lo, w in ranges for t in range(lo, lo + w)}
    holes = cov.holes(start, end)
    in_holes = {t for lo, hi in holes for t in range(lo, hi)}
    assert in_holes == {t for t in range(start, end) if t not in covered}
    assert all(lo < hi for lo, hi in holes)
    assert all(h1[1] < h2[0] for h1, h2 in itertools.pairwise(holes))
    assert all(r1[1] < r2[0] for r1, r2 in zip(cov.ranges, cov.ranges[1:], strict=False))


def test_store_records_empty_ranges_and_survives_new_instances(tmp_path: Path) -> None:
    day = ns("2024-01-01")
    Store(tmp_path).record_coverage(TRADES, day, day + 3_600 * 10**9)  # no rows at all
    Store(tmp_path).record_coverage(TRADES, day + 7_200 * 10**9, day + 10_800 * 10**9)
    store = Store(tmp_path)
    assert store.coverage(TRADES).ranges == (
        (day, day + 3_600 * 10**9),
        (day + 7_200 * 10**9, day + 10_800 * 10**9),
    )
    assert store.holes(TRADES, "2024-01-01", "2024-01-01T04:00") == [
        (day + 3_600 * 10**9, day + 7_200 * 10**9),
        (day + 10_800 * 10**9, day + 14_400 * 10**9),
    ]
    assert store.read(TRADES).height == 0
    assert TRADES in store.datasets()  # a dataset known only by its coverage
    store.record_coverage(TRADES, day, day)  # empty range: nothing to record
    with pytest.raises(ConfigError):
        store.record_coverage(TRADES, day + 1, day)
    with pytest.raises(ConfigError):
        store.holes(TRADES, "2024-02-01", "2024-01-01")


def test_rebuilt_from_candles_when_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path)
    base = ns("2024-01-31T23:50")
    bars = np.r_[np.arange(0, 20), np.arange(25, 30)] * MIN + base  # crosses a month file
    store.write(OHLC_1M, ohlc(bars))
    store.record_coverage(OHLC_1M, base, base + 30 * MIN)
    path = coverage_path(tmp_path, OHLC_1M)
    path.unlink()
    with caplog.at_level(logging.INFO, logger="dccd_core.storage"):
        cov = Store(tmp_path).coverage(OHLC_1M)
    assert "missing; rebuilt from 2 period file(s)" in caplog.text
    assert cov.ranges == ((base, base + 20 * MIN), (base + 25 * MIN, base + 30 * MIN))
    assert path.exists()  # saved again
    assert Store(tmp_path).holes(OHLC_1M, base, base + 30 * MIN) == [
        (base + 20 * MIN, base + 25 * MIN)
    ]


def test_rebuilt_from_trade_files_when_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path)
    t1, t2 = ns("2024-01-01T10:00"), ns("2024-01-02T05:00")
    store.write(TRADES, trades(["1", "2", "3"], [t1, t1 + 500, t2]))
    path = coverage_path(tmp_path, TRADES)
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="dccd_core.storage"):
        store.record_coverage(TRADES, t2 + 10, t2 + 20)
    assert "unreadable" in caplog.text
    assert store.coverage(TRADES).ranges == (
        (t1, t1 + 501),
        (t2, t2 + 1),
        (t2 + 10, t2 + 20),
    )
    assert path.with_name(path.name + ".corrupt").read_text() == "{not json"


def test_no_files_no_coverage(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert not store.coverage(TRADES)
    assert store.holes(TRADES, 0, 10) == [(0, 10)]
    assert list(tmp_path.iterdir()) == []  # asking wrote nothing


def test_rebuild_on_a_read_only_lake_still_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    t = ns("2024-01-01")
    store.write(OHLC_1M, ohlc([t, t + MIN]))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr("dccd_core.storage.store.save_coverage", refuse)
    assert Store(tmp_path).coverage(OHLC_1M).ranges == ((t, t + 2 * MIN),)


def test_what_has_not_happened_or_not_been_fetched_yet_is_not_a_hole(tmp_path: Path) -> None:
    """The open candle is never a hole; the stretch from the latest fetch to now is
    ``unfetched``, apart from the holes; a hole before it is still one."""
    from dccd_core.storage import find_holes

    store = Store(tmp_path)
    store.record_coverage(OHLC_1M, ns("2024-03-01T10:00"), ns("2024-03-01T11:00"))
    store.record_coverage(OHLC_1M, ns("2024-03-01T11:30"), ns("2024-03-01T12:00:15"))
    cov = store.coverage(OHLC_1M)
    real_hole = (ns("2024-03-01T11:00"), ns("2024-03-01T11:30"))
    now = ns("2024-03-01T12:00:45")  # covered up to now - 30 s, in the open minute
    report = find_holes(OHLC_1M, cov, ns("2024-03-01T10:00"), now, now)
    assert report.holes == (real_hole,) and report.unfetched is None
    assert store.holes(OHLC_1M, "2024-03-01T10:00", now, now_ts=now) == [real_hole]
    later = ns("2024-03-01T12:05:10")  # 4 closed bars since the latest fetch, then the open one
    report = find_holes(OHLC_1M, cov, ns("2024-03-01T10:00"), later, later)
    assert report.holes == (real_hole,)
    assert report.unfetched == (ns("2024-03-01T12:00:15"), ns("2024-03-01T12:05"))
    assert report.fetched_until == ns("2024-03-01T12:00:15")
    # a window ending in the past is judged whole: its never-fetched tail is a hole
    past = find_holes(OHLC_1M, cov, ns("2024-03-01T11:45"), ns("2024-03-01T12:03"), later)
    assert past.holes == ((ns("2024-03-01T12:00:15"), ns("2024-03-01T12:03")),)
    assert past.unfetched is None
    # trades: the last seconds after the latest flush are not fetched *yet*
    store.record_coverage(TRADES, ns("2024-03-01T10:00"), ns("2024-03-01T12:00:40"))
    report = store.hole_report(TRADES, ns("2024-03-01T10:00"), now, now_ts=now)
    assert report.holes == ()
    assert report.unfetched == (ns("2024-03-01T12:00:40"), now)
    # nothing fetched at all: the whole window is a hole
    assert find_holes(TRADES, Coverage(), 0, 10, now).holes == ((0, 10),)


def test_a_long_tail_never_fetched_is_a_hole_not_not_yet(tmp_path: Path) -> None:
    """Only a short tail (the grace: an hour, or one bar) is "not fetched yet": a day or
    three years after the latest fetch are holes, so ``dccd gaps`` never says "no holes"
    over them."""
    from dccd_core.storage import UNFETCHED_GRACE_NS, find_holes

    store = Store(tmp_path)
    store.record_coverage(TRADES, ns("2024-03-01T00:00"), ns("2024-03-02T00:00"))
    cov = store.coverage(TRADES)
    edge = ns("2024-03-02T00:00") + UNFETCHED_GRACE_NS
    at_grace = find_holes(TRADES, cov, ns("2024-03-01T00:00"), edge, edge)
    assert at_grace.holes == () and at_grace.unfetched == (ns("2024-03-02T00:00"), edge)
    past_grace = find_holes(TRADES, cov, ns("2024-03-01T00:00"), edge + 1, edge + 1)
    assert past_grace.holes == ((ns("2024-03-02T00:00"), edge + 1),)
    assert past_grace.unfetched is None
    years = ns("2027-01-01T00:00")
    report = store.hole_report(OHLC_1M, ns("2024-03-01T00:00"), years, now_ts=years)
    assert report.holes == ((ns("2024-03-01T00:00"), years),)  # nothing fetched at all
    store.record_coverage(OHLC_1M, ns("2024-03-01T00:00"), ns("2024-03-02T00:00"))
    report = store.hole_report(OHLC_1M, ns("2024-03-01T00:00"), years, now_ts=years)
    assert report.holes == ((ns("2024-03-02T00:00"), years),) and report.unfetched is None
