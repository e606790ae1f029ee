"""What a run did and what the store now holds in its window, as plain values: the
run's counters (``RunCounters``, from a backfill or a derivation) and the store's
figures for the whole window and for each daily partition of it (``summarize``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from dccd_core.domain import NS_PER_DAY, DatasetKey, DataType, iso_date, iso_datetime, now_ns

if TYPE_CHECKING:
    from dccd_core.storage import Coverage, Store

__all__ = ["DaySummary", "RunCounters", "RunSummary", "markdown_table", "summarize"]

PREVIEW_ROWS = 5
HOLES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class RunCounters:
    """The run's own counters, whatever did the run (a backfill or a derivation)."""

    rows_fetched: int
    rows_new: int
    files: tuple[str, ...]
    #: Exchange requests: a derivation makes none.
    requests: int = 0
    retries: int = 0
    rate_limit_pauses: int = 0
    #: Archive-first backfills: files planned / read and verified, rows from each
    #: source, the files that fell back (one line each) and the windows left uncovered.
    archive_files_total: int = 0
    archive_files_done: int = 0
    archive_rows: int = 0
    rest_rows: int = 0
    archive_fallbacks: tuple[str, ...] = ()
    uncovered: tuple[tuple[int, int], ...] = ()


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
    counters: RunCounters
    row_count: int
    first_ts: int | None
    last_ts: int | None
    holes: tuple[tuple[int, int], ...]
    preview_md: str
    days: tuple[DaySummary, ...] = ()


def summarize(
    counters: RunCounters | None,
    store: Store,
    key: DatasetKey,
    start_ts: int,
    end_ts: int,
    *,
    now_ts: int | None = None,
) -> RunSummary:
    """Combine the run's counters (None: none) with what the store holds in ``[start_ts, end_ts)``,
    for the whole window and for each UTC day of it.

    Reads lazily, never the whole window in memory: one pass over ``ts`` for each day's
    count, first/last ts and its last ``PREVIEW_ROWS`` timestamps, then one filtered
    read of the rows at those timestamps for every day's preview (``_previews``; it was
    one scan per day: 1.5 s of a year's run). Holes are judged at ``now_ts`` (default
    now): the candle still open is not one (``dccd_core.storage.find_holes``).
    """
    now = now_ns() if now_ts is None else now_ts
    lazy = store.scan(key, start_ts, end_ts)  # checks the window's footers
    if isinstance(lazy, pl.DataFrame):
        lazy = lazy.lazy()
    ts = pl.col("ts")
    stats = (
        lazy.group_by((ts // NS_PER_DAY).alias("day"))
        .agg(
            pl.len().alias("n"),
            ts.min().alias("first"),
            ts.max().alias("last"),
            ts.top_k(PREVIEW_ROWS).alias("tail"),
        )
        .collect()
    )
    by_day = {int(d): (int(n), int(a), int(b)) for d, n, a, b, _ in stats.iter_rows()}
    previews = _previews(lazy, stats)
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
                preview_md=previews.get(day) or markdown_table(pl.DataFrame()),
            )
        )
    row_count = sum(d.row_count for d in days)
    firsts = [d.first_ts for d in days if d.first_ts is not None]
    lasts = [d.last_ts for d in days if d.last_ts is not None]
    last_day = next((d for d in reversed(days) if d.row_count), None)
    return RunSummary(
        key=key,
        start_ts=start_ts,
        end_ts=end_ts,
        counters=counters if counters is not None else RunCounters(0, 0, ()),
        row_count=row_count,
        first_ts=min(firsts) if firsts else None,
        last_ts=max(lasts) if lasts else None,
        holes=_holes(coverage, key, start_ts, end_ts, now),
        preview_md=last_day.preview_md if last_day else markdown_table(pl.DataFrame()),
        days=tuple(days),
    )


def _previews(lazy: pl.LazyFrame, stats: pl.DataFrame) -> dict[int, str]:
    """Each day's last ``PREVIEW_ROWS`` rows as Markdown, by day number, from one read
    of the rows whose ts is among a day's last ``PREVIEW_ROWS`` timestamps (``stats``'s
    ``tail``): a handful of rows per day, whatever the window's size."""
    wanted = stats.get_column("tail").explode().drop_nulls().unique()
    if wanted.is_empty():
        return {}
    rows = (
        lazy.filter(pl.col("ts").is_in(wanted.implode()))
        .collect()
        .sort("ts")
        .with_columns((pl.col("ts") // NS_PER_DAY).alias("__day"))
    )
    # equal ts (trades) may bring more than PREVIEW_ROWS rows into a day: keep its last ones
    rows = rows.group_by("__day", maintain_order=True).tail(PREVIEW_ROWS)
    return {
        int(part.get_column("__day")[0]): markdown_table(part.drop("__day"))
        for part in rows.partition_by("__day", maintain_order=True)
    }


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
