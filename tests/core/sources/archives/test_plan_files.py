"""plan_files: which files cover a window. Property: disjoint, in order, inside the
window, monthly files only for whole closed months, nothing unpublished, and every
published whole day of the window covered (what is left is REST's)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from dccd_core.domain import NS_PER_DAY, ArchiveGranularity, DatasetKey, to_ns
from dccd_core.sources.archives.calendar import archive_periods
from dccd_core.sources.registry import build_archive_reader

DAILY, MONTHLY = ArchiveGranularity.DAILY, ArchiveGranularity.MONTHLY
KEYS = [
    DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m"),
    DatasetKey.of("binance", "BTC/USDT:USDT", "trades"),
    DatasetKey.of("bitmex", "BTC/USD:BTC", "trades"),
]
_T0 = to_ns("2023-10-01")
instants = st.integers(min_value=_T0, max_value=_T0 + 200 * NS_PER_DAY)


def _date(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC)


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(KEYS),
    start=instants,
    length=st.integers(min_value=0, max_value=120 * NS_PER_DAY),
    now_after=st.integers(min_value=-30 * NS_PER_DAY, max_value=150 * NS_PER_DAY),
)
def test_plan_properties(key: DatasetKey, start: int, length: int, now_after: int) -> None:
    reader = build_archive_reader(key.exchange)
    assert reader is not None
    end, now = start + length, start + now_after
    feature = reader.feature(key)
    files = reader.plan_files(key, start, end, now)
    published_end = now - now % NS_PER_DAY - feature.lag_days * NS_PER_DAY
    for before, after in itertools.pairwise(files):
        assert before.end_ts <= after.start_ts  # in order, disjoint
    for f in files:
        assert start <= f.start_ts < f.end_ts <= end  # inside the window
        assert f.end_ts <= published_end  # nothing unpublished, nothing of today
        assert f.granularity in feature.granularities
        first, last = _date(f.start_ts), _date(f.end_ts)
        if f.granularity is MONTHLY:  # a whole calendar month
            assert first.day == 1 and last.day == 1 and first.time() == last.time()
            assert (last.year * 12 + last.month) - (first.year * 12 + first.month) == 1
        else:
            assert f.end_ts - f.start_ts == NS_PER_DAY and f.start_ts % NS_PER_DAY == 0
        assert len({f.name for f in files}) == len(files)
    # every whole published day of the window is covered (the REST tail is the rest)
    lo = -(-start // NS_PER_DAY) * NS_PER_DAY
    hi = min(end - end % NS_PER_DAY, published_end)
    covered = sum(f.end_ts - f.start_ts for f in files)
    assert covered == max(0, hi - lo)


def test_daily_files_where_a_month_is_not_whole_or_not_closed() -> None:
    day = NS_PER_DAY
    jan, feb = to_ns("2024-01-01"), to_ns("2024-02-01")
    both = (MONTHLY, DAILY)
    # the whole of January, closed and published by Feb 3: one monthly file
    (month,) = archive_periods(jan, feb, feb + 2 * day, lag_days=1, granularities=both)
    assert (month.granularity, month.start_ts, month.end_ts) == (MONTHLY, jan, feb)
    # February 1: January's last day is not published yet (lag 1): days up to Jan 30
    days = archive_periods(jan, feb, feb + day // 2, lag_days=1, granularities=both)
    assert [p.granularity for p in days] == [DAILY] * 30
    # a window starting on Jan 2: no monthly file
    days = archive_periods(jan + day, feb, feb + 5 * day, lag_days=1, granularities=both)
    assert len(days) == 30 and {p.granularity for p in days} == {DAILY}
    # monthly files only (no daily ones): partial months are skipped, left to REST
    only = archive_periods(jan + day, to_ns("2024-03-01"), to_ns("2024-04-01"),
                           lag_days=1, granularities=(MONTHLY,))  # fmt: skip
    assert [(p.start_ts, p.end_ts) for p in only] == [(feb, to_ns("2024-03-01"))]
