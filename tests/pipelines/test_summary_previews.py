"""Each day's preview in a range summary: the day's own last rows, read in one pass."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dccd_core.domain import NS_PER_DAY, DatasetKey, iso_datetime, to_ns
from dccd_core.storage import Store
from dccd_pipelines.summary import PREVIEW_ROWS, summarize

TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")


def _trades(ts: list[int], first_id: int) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame({
        "ts": ts, "trade_id": [str(first_id + i) for i in range(n)],
        "price": [100.0 + i for i in range(n)], "amount": [1.0] * n, "side": ["buy"] * n,
    })


def test_each_day_previews_its_own_last_rows_ties_included(tmp_path: Path) -> None:
    """Day 1: 20 trades, the last 8 in one ns (a burst); day 2: none; day 3: 3 trades.
    Each preview holds that day's last rows only (at most PREVIEW_ROWS), in ts order."""
    day0 = to_ns("2024-03-01")
    store = Store(tmp_path)
    first = [day0 + i * 1_000 for i in range(12)] + [day0 + NS_PER_DAY - 1] * 8
    third = [day0 + 2 * NS_PER_DAY + i for i in (5, 6, 7)]
    store.write(TRADES, _trades(first, 0))
    store.write(TRADES, _trades(third, 100))
    summary = summarize(None, store, TRADES, day0, day0 + 3 * NS_PER_DAY,
                        now_ts=day0 + 10 * NS_PER_DAY)
    one, two, three = summary.days
    assert (one.row_count, two.row_count, three.row_count) == (20, 0, 3)
    lines = one.preview_md.splitlines()
    assert len(lines) == 2 + PREVIEW_ROWS
    assert all(iso_datetime(day0 + NS_PER_DAY - 1) in line for line in lines[2:])
    assert two.preview_md == "_no rows_"
    rows = three.preview_md.splitlines()[2:]
    assert [r.split(" | ")[1] for r in rows] == ["100", "101", "102"]  # trade ids, ts order
    assert summary.preview_md == three.preview_md  # the run's: its last day with rows
