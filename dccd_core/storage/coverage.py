"""Which time ranges of a dataset were fetched, and where the holes are.

"No trades in this hour" and "never fetched" are different facts, and only the
fetcher knows the first one: it records every ``[start, end)`` it fetched, with rows
or without. The record is a small JSON file beside the period files
(``{dataset_dir}/_coverage.json``), replaced atomically under the dataset lock.

When the record is missing or unreadable it is rebuilt from the period files, which
can only approximate it:

- candles: each run of consecutive bars (``ts`` stepping by the span) is covered from
  its first bar's open to its last bar's close; a missing bar is a hole, even if the
  exchange legitimately had no trading then;
- trades and book: each period file covers ``[min ts, max ts]`` of its rows (from
  the footer statistics); quiet stretches at the edges of a day become holes, and
  fetched ranges that yielded no rows at all are lost.

A hole is a never-fetched range of what has already happened. ``find_holes`` is the
one place that decides it (the store, the run metadata, the checks and ``dccd gaps``
all ask it): nothing after ``settled_until(key, now)`` can be a hole (the candle still
open has not happened yet), and a *short* never-fetched stretch from the latest fetch
up to now (at most ``UNFETCHED_GRACE_NS`` or one bar, whichever is longer: the seconds
between a fetch and the report, the minutes between two scheduled updates) is reported
apart, as ``HoleReport.unfetched`` (the next update's job, watched by the freshness
policy). A longer one is a hole like any other: three years never fetched are not
"not fetched yet".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dccd_core.domain import ConfigError, DatasetKey, now_ns

from .files import (
    read_footer,
    read_period_frame,
    read_record,
    ts_range_from_footer,
    write_record,
)
from .layout import PeriodFile

__all__ = [
    "Coverage",
    "HoleReport",
    "find_holes",
    "load_coverage",
    "rebuild_coverage",
    "save_coverage",
    "settled_until",
]

logger = logging.getLogger(__name__)

_VERSION = 1


@dataclass(frozen=True, slots=True)
class Coverage:
    """Sorted, disjoint, non-adjacent half-open ``[start, end)`` ns ranges."""

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, ranges: Iterable[tuple[int, int]]) -> Coverage:
        """Normalise any ranges: drop empty ones, merge overlapping and adjacent ones."""
        merged: list[list[int]] = []
        for start, end in sorted((int(s), int(e)) for s, e in ranges if e > s):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return cls(tuple((s, e) for s, e in merged))

    def add(self, start: int, end: int) -> Coverage:
        """This coverage plus ``[start, end)``; ``end < start`` is a ``ConfigError``."""
        if end < start:
            raise ConfigError(f"coverage range ends before it starts: [{start}, {end})")
        return Coverage.of([*self.ranges, (start, end)])

    def holes(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` not covered, oldest first."""
        if end < start:
            raise ConfigError(f"range ends before it starts: [{start}, {end})")
        holes = []
        cursor = start
        for lo, hi in self.ranges:
            if hi <= cursor:
                continue
            if lo >= end:
                break
            if lo > cursor:
                holes.append((cursor, lo))
            cursor = max(cursor, hi)
            if cursor >= end:
                break
        if cursor < end:
            holes.append((cursor, end))
        return holes

    def covers(self, start: int, end: int) -> bool:
        """True when all of ``[start, end)`` was fetched."""
        return not self.holes(start, end)

    @property
    def start(self) -> int | None:
        """The first covered ns, if any."""
        return self.ranges[0][0] if self.ranges else None

    @property
    def end(self) -> int | None:
        """The end (exclusive) of the last covered range, if any."""
        return self.ranges[-1][1] if self.ranges else None

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.ranges)

    def __len__(self) -> int:
        return len(self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)


UNFETCHED_GRACE_NS = 3_600 * 1_000_000_000
"""The longest tail after the latest fetch still called "not fetched yet" (one hour, or
one bar when the span is longer); past it the tail is a hole."""


def settled_until(key: DatasetKey, now_ts: int) -> int:
    """The end of what has happened: for candles the open of the bar still in progress
    (its close is not known yet), for everything else ``now_ts``."""
    return key.span.floor(now_ts) if key.span is not None else now_ts


@dataclass(frozen=True, slots=True)
class HoleReport:
    """The never-fetched parts of a window, oldest first.

    ``holes``: ranges missing between fetched ones (or anywhere in a window that ends
    before the latest fetch or in the past, or a tail longer than the grace);
    ``unfetched``: the short range from the latest fetch to now (``settled_until``), not
    fetched *yet*, or None; ``fetched_until``: the end of the latest fetch (None when
    nothing was ever fetched).
    """

    holes: tuple[tuple[int, int], ...]
    unfetched: tuple[int, int] | None
    fetched_until: int | None


def find_holes(
    key: DatasetKey, coverage: Coverage, start: int, end: int, now_ts: int | None = None
) -> HoleReport:
    """The holes of ``[start, end)`` (see the module docstring); ``now_ts`` defaults to now.

    Only what has happened is judged: the window is cut at ``settled_until``. A
    never-fetched range that reaches that point and starts at or after the end of the
    latest fetch is ``unfetched``, not a hole, when it is no longer than the grace
    (``UNFETCHED_GRACE_NS``, or one bar for longer spans). With nothing fetched at all,
    every part of the window is a hole.
    """
    if end < start:
        raise ConfigError(f"range ends before it starts: [{start}, {end})")
    horizon = settled_until(key, now_ns() if now_ts is None else now_ts)
    hi = min(end, horizon)
    holes = coverage.holes(start, hi) if hi > start else []
    unfetched = None
    fetched_until = coverage.end
    if holes and fetched_until is not None and hi == horizon:
        last_start, last_end = holes[-1]
        grace = max(UNFETCHED_GRACE_NS, key.span.ns if key.span is not None else 0)
        if last_end == horizon and last_start >= fetched_until and last_end - last_start <= grace:
            unfetched = holes.pop()
    return HoleReport(tuple(holes), unfetched, fetched_until)


def load_coverage(path: Path) -> Coverage | None:
    """The recorded coverage, or None when the file is missing or corrupt (logged)."""
    text = read_record(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
        if data.get("version") != _VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        ranges = [(int(s), int(e)) for s, e in data["ranges"]]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        logger.warning("coverage record %s is unreadable (%s); rebuilding it", path, exc)
        return None
    return Coverage.of(ranges)


def save_coverage(path: Path, coverage: Coverage) -> None:
    """Replace the record atomically (call under the dataset lock)."""
    payload = json.dumps({"version": _VERSION, "ranges": [list(r) for r in coverage.ranges]})
    write_record(path, payload + "\n")


def _candle_runs(ts: pl.Series, span_ns: int) -> list[tuple[int, int]]:
    """``[first open, last close)`` of each run of consecutive bars (sorted ts)."""
    if ts.len() == 0:
        return []
    frame = pl.DataFrame({"ts": ts}).with_columns(
        (pl.col("ts").diff().fill_null(span_ns + 1) != span_ns).cum_sum().alias("run")
    )
    runs = frame.group_by("run", maintain_order=True).agg(
        pl.col("ts").first().alias("lo"), pl.col("ts").last().alias("hi")
    )
    return [(int(lo), int(hi) + span_ns) for lo, hi in runs.select("lo", "hi").iter_rows()]


def rebuild_coverage(key: DatasetKey, files: Sequence[PeriodFile]) -> Coverage:
    """Approximate coverage from the period files (see the module docstring)."""
    ranges: list[tuple[int, int]] = []
    if key.span is not None:  # candles: ohlc, mark, index
        by_period: dict[str, list[pl.Series]] = {}  # a period's base and segments together
        for period_file in files:
            ts = read_period_frame(period_file.path, ["ts"]).get_column("ts")
            by_period.setdefault(period_file.period, []).append(ts)
        for parts in by_period.values():
            ranges.extend(_candle_runs(pl.concat(parts).sort(), key.span.ns))
        return Coverage.of(ranges)
    for period_file in files:
        bounds = ts_range_from_footer(read_footer(period_file.path))
        if bounds is None:
            ts = read_period_frame(period_file.path, ["ts"]).get_column("ts")
            if ts.len() == 0:
                continue
            bounds = (int(ts.min()), int(ts.max()))  # type: ignore[arg-type]
        ranges.append((bounds[0], bounds[1] + 1))
    return Coverage.of(ranges)
