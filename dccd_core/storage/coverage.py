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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dccd_core.domain import ConfigError, DatasetKey, DataType

from .files import atomic_write, read_footer, read_period_frame, ts_range_from_footer
from .layout import PeriodFile

__all__ = ["Coverage", "load_coverage", "rebuild_coverage", "save_coverage"]

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


def load_coverage(path: Path) -> Coverage | None:
    """The recorded coverage, or None when the file is missing or corrupt (logged)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
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

    def write(tmp: Path) -> None:
        tmp.write_text(payload + "\n", encoding="utf-8")

    atomic_write(path, write)


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
    for period_file in files:
        if key.data_type is DataType.OHLC and key.span is not None:
            ts = read_period_frame(period_file.path, ["ts"]).get_column("ts")
            ranges.extend(_candle_runs(ts, key.span.ns))
        else:
            bounds = ts_range_from_footer(read_footer(period_file.path))
            if bounds is None:
                ts = read_period_frame(period_file.path, ["ts"]).get_column("ts")
                if ts.len() == 0:
                    continue
                bounds = (int(ts.min()), int(ts.max()))  # type: ignore[arg-type]
            ranges.append((bounds[0], bounds[1] + 1))
    return Coverage.of(ranges)
