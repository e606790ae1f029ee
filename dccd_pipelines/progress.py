"""Backfill progress in the run log.

``operations.backfill`` calls its ``progress`` callback as windows complete.
``ProgressLog`` turns those calls into one log line at most every ``interval_s`` and a
heartbeat task repeats the latest state when nothing completes (a long rate-limit pause
still says where the run is), so the run log speaks at least every 10 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dccd_core.domain import iso_datetime

__all__ = ["PROGRESS_INTERVAL_S", "ProgressLog", "format_progress"]

#: The run log gets a progress line at least this often.
PROGRESS_INTERVAL_S = 10.0


def _attr(obj: Any, *names: str) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3_600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_progress(progress: Any) -> str:
    """One log line from a backfill progress object (share of the time range covered,
    windows, archive files (when any), covered-until, rows/s, ETA, retries, rate-limit
    pauses)."""
    done = _attr(progress, "windows_done")
    total = _attr(progress, "windows_total")
    fraction = _attr(progress, "fraction")
    parts = []
    if isinstance(fraction, float):
        # time covered, not windows: a trades window is one window from start to end
        parts.append(f"{100 * fraction:.1f}% of the time range")
        if done is not None and total:
            parts.append(f"windows {done}/{total}")
    elif done is not None and total:
        parts.append(f"windows {done}/{total} ({100 * done / total:.1f}%)")
    elif done is not None:
        parts.append(f"windows {done}")
    files_total = _attr(progress, "archive_files_total")
    if files_total:
        parts.append(
            f"archive files {_attr(progress, 'archive_files_done') or 0}/{files_total} "
            f"({_attr(progress, 'archive_rows') or 0:,} archive rows, "
            f"{_attr(progress, 'rest_rows') or 0:,} REST rows, "
            f"{_attr(progress, 'fallbacks') or 0} fallbacks)"
        )
    covered = _attr(progress, "covered_until_ts", "covered_until")
    if isinstance(covered, int):
        parts.append(f"covered until {iso_datetime(covered)}")
    rows = _attr(progress, "rows_fetched", "rows")
    if rows is not None:
        parts.append(f"rows {rows:,}")
    rate = _attr(progress, "rows_per_s")
    if rate is not None:
        parts.append(f"{rate:,.0f} rows/s")
    eta = _attr(progress, "eta_s")
    parts.append(f"ETA {_duration(eta)}")
    parts.append(f"retries {_attr(progress, 'retries') or 0}")
    parts.append(f"rate-limit pauses {_attr(progress, 'rate_limit_pauses') or 0}")
    return ", ".join(parts)


@dataclass
class ProgressLog:
    """The backfill's ``progress`` callback: logs at most once per ``interval_s`` and,
    through ``heartbeat``, at least once per ``interval_s`` while the run is alive."""

    log: Callable[[str], None]
    label: str = ""
    interval_s: float = PROGRESS_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    latest: Any = None
    lines: int = 0
    _last_emit: float = field(default=-1e18)

    def __call__(self, progress: Any) -> None:
        self.latest = progress
        if self.clock() - self._last_emit >= self.interval_s:
            self.emit()

    def emit(self) -> None:
        """Log the latest state now."""
        self._last_emit = self.clock()
        text = format_progress(self.latest) if self.latest is not None else "starting"
        self.lines += 1
        self.log(f"{self.label}: {text}" if self.label else text)

    async def heartbeat(self) -> None:
        """Repeat the latest state whenever ``interval_s`` passed without a line."""
        while True:
            await asyncio.sleep(self.interval_s / 4)
            if self.clock() - self._last_emit >= self.interval_s:
                self.emit()
