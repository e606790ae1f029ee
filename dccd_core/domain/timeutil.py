"""UTC time helpers: every timestamp in dccd is Int64 nanoseconds since the epoch.

Naive datetimes and ISO strings without an offset are taken as UTC, because market
data has no local time and guessing the machine's zone silently shifts a whole lake.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

from .errors import ConfigError

__all__ = [
    "NS_PER_DAY",
    "NS_PER_MS",
    "NS_PER_S",
    "TimeLike",
    "day_start_ns",
    "iso_date",
    "iso_datetime",
    "ms_to_ns",
    "now_ns",
    "ns_to_datetime",
    "ns_to_ms",
    "s_to_ns",
    "to_ns",
]

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

TimeLike = int | datetime | date | str

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"^-?\d+$")
# Every ts is an Int64 of ns: 1677-09-21 .. 2262-04-11. Beyond, a time cannot be stored.
_NS_MIN, _NS_MAX = -(2**63), 2**63 - 1


def now_ns() -> int:
    """The current time in ns (wall clock, UTC)."""
    return time.time_ns()


def ms_to_ns(ms: int | float | str) -> int:
    """Milliseconds (number or numeric string, as exchanges send them) to ns."""
    return int(ms) * NS_PER_MS if not isinstance(ms, float) else round(ms * NS_PER_MS)


def s_to_ns(seconds: int | float | str) -> int:
    """Seconds (int, float or numeric string; Kraken sends float seconds) to ns.

    Floats are rounded to the microsecond first: a float second cannot carry more,
    so 1712345678.1234567 becomes ...123457000 ns, not ...123456768.
    """
    if isinstance(seconds, str):
        seconds = float(seconds) if ("." in seconds or "e" in seconds.lower()) else int(seconds)
    if isinstance(seconds, int):
        return seconds * NS_PER_S
    return round(seconds * 1_000_000) * 1_000


def ns_to_ms(ts: int) -> int:
    """ns to whole milliseconds, rounding down (floor), as exchanges page by ms."""
    return ts // NS_PER_MS


def ns_to_datetime(ts: int) -> datetime:
    """ns to an aware UTC datetime (microsecond precision, floor)."""
    return _EPOCH + timedelta(microseconds=ts // 1_000)


def iso_datetime(ts: int) -> str:
    """ns to ``2024-01-01T00:00:00Z`` (fractional seconds only when present)."""
    dt = ns_to_datetime(ts)
    frac = ts % NS_PER_S
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def iso_date(ts: int) -> str:
    """ns to ``2024-01-01`` (the UTC day containing ``ts``)."""
    return ns_to_datetime(ts).strftime("%Y-%m-%d")


def day_start_ns(ts: int) -> int:
    """The ns of 00:00 UTC of the day containing ``ts``."""
    return ts - ts % NS_PER_DAY


def _datetime_to_ns(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def _parse_iso(text: str) -> int:
    value = text.strip()
    if _DIGITS.match(value):
        return int(value)
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    frac_ns = 0
    match = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d{1,9})(.*)$", value)
    if match:
        # datetime only keeps microseconds; keep the nanoseconds ourselves.
        head, digits, tail = match.groups()
        frac_ns = int(digits.ljust(9, "0"))
        value = head + tail
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"invalid time {text!r}: use an ISO date (2024-01-01), an ISO datetime "
            "(2024-01-01T12:00:00Z) or integer nanoseconds since the epoch"
        ) from None
    return _datetime_to_ns(parsed) + frac_ns


def to_ns(value: TimeLike) -> int:
    """Any accepted time form (ns int, datetime, date, ISO string) to ns.

    Raises ``ConfigError`` naming the accepted forms for anything else, and for a
    time outside the Int64 ns range (1677-09-21 .. 2262-04-11).
    """
    ns = _to_ns(value)
    if not _NS_MIN <= ns <= _NS_MAX:
        raise ConfigError(
            f"time {value!r} is out of range: times are Int64 ns since the epoch "
            "(1677-09-21 to 2262-04-11); use an ISO date (2024-01-01), an ISO datetime "
            "or ns in that range"
        )
    return ns


def _to_ns(value: TimeLike) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"invalid time {value!r}: a bool is not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return _datetime_to_ns(value)
    if isinstance(value, date):
        return _datetime_to_ns(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if isinstance(value, str):
        return _parse_iso(value)
    raise ConfigError(
        f"invalid time {value!r}: use ns (int), a datetime, a date or an ISO string"
    )
