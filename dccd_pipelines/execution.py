"""What an asset run does, as plain functions testable without Dagster.

An asset body (``assets.py``) only translates Dagster's partition range into a time
window, calls ``run_backfill`` and turns the ``RunSummary`` into metadata. Everything
here takes plain values (ns timestamps, a ``Store``, a log callable), so it can be
exercised from a notebook or a unit test.

Progress: ``operations.backfill`` calls its ``progress`` callback as windows complete.
``ProgressLog`` turns those calls into one log line at most every ``interval_s`` and a
heartbeat task repeats the latest state when nothing completes (a long rate-limit pause
still says where the run is), so the run log speaks at least every 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from dccd_core.domain import (
    NS_PER_DAY,
    ConfigError,
    DatasetKey,
    DataType,
    iso_date,
    iso_datetime,
    now_ns,
    to_ns,
)

if TYPE_CHECKING:
    from dccd_core.catalog import DatasetSpec
    from dccd_core.storage import Coverage, Store

__all__ = [
    "PROGRESS_INTERVAL_S",
    "DaySummary",
    "ProgressLog",
    "RunSummary",
    "format_progress",
    "load_backfill",
    "markdown_table",
    "partition_window",
    "run_backfill",
    "summarize",
]

#: The run log gets a progress line at least this often.
PROGRESS_INTERVAL_S = 10.0
PREVIEW_ROWS = 5
HOLES_SHOWN = 5


def partition_window(first_day: str, last_day: str, now_ts: int | None = None) -> tuple[int, int]:
    """[start of ``first_day``, end of ``last_day``) in ns, the end clipped to now.

    Daily partition keys are ``YYYY-MM-DD`` (UTC); today's partition is in progress, so
    its window ends now, not at midnight.
    """
    start_ts = to_ns(first_day)
    end_ts = to_ns(last_day) + NS_PER_DAY
    now = now_ns() if now_ts is None else now_ts
    end_ts = min(end_ts, now)
    if end_ts <= start_ts:
        raise ConfigError(
            f"partition range {first_day}...{last_day} starts in the future; pick days up to today"
        )
    return start_ts, end_ts


# --------------------------------------------------------------------------- progress


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
    windows, covered-until, rows/s, ETA, retries, rate-limit pauses)."""
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


# --------------------------------------------------------------------------- backfill


def load_backfill() -> Callable[..., Any]:
    """``dccd_core.operations.backfill.backfill`` (a seam: tests may swap it)."""
    from dccd_core.operations.backfill import backfill

    return cast("Callable[..., Any]", backfill)


def run_backfill(
    spec: DatasetSpec,
    start_ts: int,
    end_ts: int,
    store: Store,
    log: Callable[[str], None],
    *,
    interval_s: float = PROGRESS_INTERVAL_S,
    source: Any = None,
) -> Any:
    """Fetch ``[start_ts, end_ts)`` of ``spec`` into ``store`` (committed in bounded chunks
    by the backfill itself) and return its ``BackfillResult``."""
    backfill = load_backfill()
    reporter = ProgressLog(log, label=str(spec.key), interval_s=interval_s)

    async def main() -> Any:
        src = source
        if src is None and (spec.rest_url or spec.ws_url):
            from dccd_core.sources.registry import build_source

            src = build_source(spec.key.exchange, rest_url=spec.rest_url, ws_url=spec.ws_url)
        beat = asyncio.create_task(reporter.heartbeat())
        try:
            return await backfill(
                spec.key, start=start_ts, end=end_ts, store=store, source=src, progress=reporter
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if source is None and src is not None:  # ours to close (backfill closes its own)
                await src.aclose()

    log(f"{spec.key}: backfill {iso_datetime(start_ts)} -> {iso_datetime(end_ts)}")
    result = asyncio.run(main())
    return result


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class DaySummary:
    """What the store holds for one daily partition of a run (its own figures)."""

    partition: str
    start_ts: int
    end_ts: int
    row_count: int
    first_ts: int | None
    last_ts: int | None
    holes: tuple[tuple[int, int], ...]
    preview_md: str

    def as_dict(self) -> dict[str, Any]:
        """Flat metadata values (ISO strings for timestamps)."""
        return {
            "row_count": self.row_count,
            "window_start": iso_datetime(self.start_ts),
            "window_end": iso_datetime(self.end_ts),
            "first_ts": iso_datetime(self.first_ts) if self.first_ts is not None else None,
            "last_ts": iso_datetime(self.last_ts) if self.last_ts is not None else None,
            "holes": len(self.holes),
            "holes_first": [
                f"{iso_datetime(a)} -> {iso_datetime(b)}" for a, b in self.holes[:HOLES_SHOWN]
            ],
        }


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did and what the store now holds in its window (plain values).

    The counters (``rows_fetched`` .. ``files``) are the run's; ``days`` holds each
    daily partition's own figures, since a range run materializes every day of it.
    """

    key: DatasetKey
    start_ts: int
    end_ts: int
    rows_fetched: int
    rows_new: int
    requests: int
    retries: int
    rate_limit_pauses: int
    files: tuple[str, ...]
    row_count: int
    first_ts: int | None
    last_ts: int | None
    holes: tuple[tuple[int, int], ...]
    preview_md: str
    days: tuple[DaySummary, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Flat metadata values (ISO strings for timestamps)."""
        return {
            "rows_fetched": self.rows_fetched,
            "rows_new": self.rows_new,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limit_pauses": self.rate_limit_pauses,
            "window_start": iso_datetime(self.start_ts),
            "window_end": iso_datetime(self.end_ts),
            "first_ts": iso_datetime(self.first_ts) if self.first_ts is not None else None,
            "last_ts": iso_datetime(self.last_ts) if self.last_ts is not None else None,
            "files_written": len(self.files),
            "holes": len(self.holes),
            "holes_first": [
                f"{iso_datetime(a)} -> {iso_datetime(b)}" for a, b in self.holes[:HOLES_SHOWN]
            ],
            "row_count": self.row_count,
        }


def summarize(
    result: Any,
    store: Store,
    key: DatasetKey,
    start_ts: int,
    end_ts: int,
    *,
    now_ts: int | None = None,
) -> RunSummary:
    """Combine the backfill's counters with what the store holds in ``[start_ts, end_ts)``,
    for the whole window and for each UTC day of it.

    Reads lazily: one pass over ``ts`` for the per-day counts, then the last rows of
    each day, never the whole window in memory. Holes are judged at ``now_ts`` (default
    now): the candle still open is not one (``dccd_core.storage.find_holes``).
    """
    now = now_ns() if now_ts is None else now_ts
    lazy = store.scan(key, start_ts, end_ts)  # checks the window's footers
    if isinstance(lazy, pl.DataFrame):
        lazy = lazy.lazy()
    ts = pl.col("ts")
    stats = (
        lazy.group_by((ts // NS_PER_DAY).alias("day"))
        .agg(pl.len().alias("n"), ts.min().alias("first"), ts.max().alias("last"))
        .collect()
    )
    by_day = {int(d): (int(n), int(a), int(b)) for d, n, a, b in stats.iter_rows()}
    coverage = store.coverage(key) if key.data_type is not DataType.BOOK else None
    days = []
    for day in range(start_ts // NS_PER_DAY, (end_ts - 1) // NS_PER_DAY + 1):
        lo, hi = max(start_ts, day * NS_PER_DAY), min(end_ts, (day + 1) * NS_PER_DAY)
        n, first, last = by_day.get(day, (0, None, None))
        days.append(
            DaySummary(
                partition=iso_date(day * NS_PER_DAY),
                start_ts=lo,
                end_ts=hi,
                row_count=n,
                first_ts=first,
                last_ts=last,
                holes=_holes(coverage, key, lo, hi, now),
                preview_md=_preview(store, key, lo, hi) if n else markdown_table(pl.DataFrame()),
            )
        )
    row_count = sum(d.row_count for d in days)
    firsts = [d.first_ts for d in days if d.first_ts is not None]
    lasts = [d.last_ts for d in days if d.last_ts is not None]
    last_day = next((d for d in reversed(days) if d.row_count), None)
    files = tuple(str(f) for f in (getattr(result, "files", None) or ()))
    return RunSummary(
        key=key,
        start_ts=start_ts,
        end_ts=end_ts,
        rows_fetched=int(getattr(result, "rows_fetched", 0) or 0),
        rows_new=int(getattr(result, "rows_new", 0) or 0),
        requests=int(getattr(result, "requests", 0) or 0),
        retries=int(getattr(result, "retries", 0) or 0),
        rate_limit_pauses=int(getattr(result, "rate_limit_pauses", 0) or 0),
        files=files,
        row_count=row_count,
        first_ts=min(firsts) if firsts else None,
        last_ts=max(lasts) if lasts else None,
        holes=_holes(coverage, key, start_ts, end_ts, now),
        preview_md=last_day.preview_md if last_day else markdown_table(pl.DataFrame()),
        days=tuple(days),
    )


def _preview(store: Store, key: DatasetKey, start_ts: int, end_ts: int) -> str:
    """The last rows of ``[start_ts, end_ts)``."""
    lazy = store.scan(key, start_ts, end_ts)
    if isinstance(lazy, pl.DataFrame):
        lazy = lazy.lazy()
    return markdown_table(lazy.top_k(PREVIEW_ROWS, by="ts").sort("ts").collect())


def _holes(
    coverage: Coverage | None, key: DatasetKey, start_ts: int, end_ts: int, now_ts: int
) -> tuple[tuple[int, int], ...]:
    if coverage is None:
        return ()  # book snapshots are point samples: "holes" are not defined for them
    from dccd_core.storage import find_holes

    return find_holes(key, coverage, start_ts, end_ts, now_ts).holes


def markdown_table(df: pl.DataFrame) -> str:
    """A small Markdown table, ``ts`` shown as ISO time (for the UI's metadata panel)."""
    if df.is_empty():
        return "_no rows_"
    cols = df.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.iter_rows(named=True):
        cells = []
        for col in cols:
            value = row[col]
            if col == "ts" and isinstance(value, int):
                cells.append(iso_datetime(value))
            elif value is None:
                cells.append("")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
