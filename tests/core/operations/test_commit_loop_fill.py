"""The backfill's commit loop filling big closed days (issue 12): each bounded commit
appends a segment to the day being filled instead of rewriting it, the finished day is
compacted once, and the lake ends equal to the truth with coverage up to the end."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from dccd_core.operations.backfill.commit_loop import commit_chunks
from dccd_core.storage import SegmentPolicy, Store
from dccd_core.storage.layout import list_period_files
from dccd_core.transport.paginate import Chunk
from tests.core.storage.helpers import TRADES, ns, trades

DAY0 = ns("2024-02-29")
SECOND = 10**9
PAGE = 20


def _truth() -> pl.DataFrame:
    """Two busy days of trades: 200 a day, one every 7 minutes."""
    ts = [DAY0 + day * 86_400 * SECOND + i * 420 * SECOND for day in (0, 1) for i in range(200)]
    return trades([str(i) for i in range(len(ts))], ts)


async def _pages(truth: pl.DataFrame) -> AsyncGenerator[Chunk, None]:
    start = DAY0
    for lo in range(0, truth.height, PAGE):
        page = truth.slice(lo, PAGE)
        until = int(page["ts"].max()) + 1
        yield Chunk(page, start, until)
        start = until


async def test_big_days_fill_as_segments_and_end_as_one_file_each(tmp_path: Path) -> None:
    truth = _truth()
    policy = SegmentPolicy(min_base_rows=20, open_segment_rows=0)
    store = Store(tmp_path, commit_rows=50, commit_seconds=3600, segments=policy)
    seen: list[tuple[int, int]] = []  # (base files, segments) after each commit

    def after_commit(until_ts: int) -> None:
        files = list_period_files(tmp_path, TRADES)
        seen.append(
            (sum(f.segment is None for f in files), sum(f.segment is not None for f in files))
        )
        # everything committed so far is readable once, whatever the layout
        assert store.read(TRADES).equals(truth.filter(pl.col("ts") < until_ts))

    run = SimpleNamespace(start_ts=DAY0, rows=0)
    result = await commit_chunks(
        TRADES,
        store,
        _pages(truth),
        run,  # type: ignore[arg-type]
        {"source": "test", "transport": "rest"},
        after_commit=after_commit,
    )
    assert result.new_rows == truth.height
    assert max(segments for _, segments in seen) >= 2  # commits appended, not rewrote
    assert [(f.period, f.segment) for f in list_period_files(tmp_path, TRADES)] == [
        ("2024-02-29", None),
        ("2024-03-01", None),
    ]
    assert store.read(TRADES).equals(truth)
    end = int(truth["ts"].max()) + 1
    assert store.holes(TRADES, DAY0, end) == []
