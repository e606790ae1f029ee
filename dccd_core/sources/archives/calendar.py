"""Which monthly and daily files cover a window: the calendar half of ``plan_files``.

Pure arithmetic on UTC days. A file holds one whole UTC month or day, so only whole
days inside ``[start_ts, end_ts)`` can come from archives; the partial days at the
edges, today, and the closed days not yet published are left to REST. A day is
*published* once ``lag_days`` whole days have passed since it closed (a day ``D``'s
file is there by ``D + 1 + lag_days`` 00:00 UTC); a month likewise once its last day is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dccd_core.domain import NS_PER_DAY, ArchiveGranularity

__all__ = ["Period", "archive_periods", "month_end_ns", "period_date"]


@dataclass(frozen=True, slots=True)
class Period:
    """One file's span: ``[start_ts, end_ts)``, a whole UTC month or day."""

    granularity: ArchiveGranularity
    start_ts: int
    end_ts: int


def _floor_day(ts: int) -> int:
    return ts - ts % NS_PER_DAY


def _ceil_day(ts: int) -> int:
    return -(-ts // NS_PER_DAY) * NS_PER_DAY


def _date(ts: int) -> datetime:
    return datetime.fromtimestamp(ts // 1_000_000_000, tz=UTC)


def month_end_ns(ts: int) -> int:
    """00:00 UTC of the first day of the month after the one holding ``ts``."""
    day = _date(ts)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


def period_date(period: Period) -> str:
    """``YYYY-MM`` of a monthly period, ``YYYY-MM-DD`` of a daily one (file names)."""
    day = _date(period.start_ts)
    if period.granularity is ArchiveGranularity.MONTHLY:
        return f"{day.year:04d}-{day.month:02d}"
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def archive_periods(
    start_ts: int,
    end_ts: int,
    now_ts: int,
    *,
    lag_days: int,
    granularities: tuple[ArchiveGranularity, ...],
) -> list[Period]:
    """The files covering the whole, published days of ``[start_ts, end_ts)``, in time
    order and disjoint: a month's file where the whole month is inside and published
    (and monthly files exist), else one file per day (where daily files exist)."""
    monthly = ArchiveGranularity.MONTHLY in granularities
    daily = ArchiveGranularity.DAILY in granularities
    published_end = _floor_day(now_ts) - max(0, lag_days) * NS_PER_DAY
    hi = min(_floor_day(end_ts), published_end)
    cursor = _ceil_day(start_ts)
    out: list[Period] = []
    while cursor < hi:
        first_of_month = _date(cursor).day == 1
        month_end = month_end_ns(cursor)
        if monthly and first_of_month and month_end <= hi:
            out.append(Period(ArchiveGranularity.MONTHLY, cursor, month_end))
            cursor = month_end
        elif daily:
            out.append(Period(ArchiveGranularity.DAILY, cursor, cursor + NS_PER_DAY))
            cursor += NS_PER_DAY
        else:  # monthly files only: skip to the next month's start
            cursor = month_end
    return out
