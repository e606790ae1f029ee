"""Invariants of the store under arbitrary writes and reads (hypothesis).

Whatever sequence of overlapping, duplicated, out-of-order writes arrives, through
``write`` or ``writer``, the dataset reads back as the deduplicated union sorted by ts,
the newest version of each row winning; and ``read(start, end)`` returns exactly the
rows in ``[start, end)`` across day, month, year and leap-day file boundaries.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dccd_core.domain import DatasetKey
from dccd_core.storage import Store

from .helpers import OHLC_1H, OHLC_1M, TRADES, ns, ohlc, trades

MIN = 60 * 10**9
HOUR = 60 * MIN


@dataclass(frozen=True)
class Case:
    """A dataset and a pool of timestamps straddling its period boundaries."""

    key: DatasetKey
    pool: tuple[int, ...]

    def rows(self, picks: list[tuple[int, float]]) -> pl.DataFrame:
        """Rows for pool indexes with a version value; a trade's id fixes its ts."""
        ts = [self.pool[i] for i, _ in picks]
        values = [v for _, v in picks]
        if self.key == TRADES:
            return trades([f"t{i}" for i, _ in picks], ts, values)
        return ohlc(ts, values)

    def key_of(self, index: int) -> object:
        return f"t{index}" if self.key == TRADES else self.pool[index]


def _around(edges: list[str], step: int, before: int, after: int) -> tuple[int, ...]:
    return tuple(sorted({ns(e) + k * step for e in edges for k in range(-before, after)}))


CASES = {
    "ohlc-1m-monthly": Case(
        OHLC_1M,
        _around(["2024-01-01", "2024-02-01", "2024-02-29", "2024-03-01"], MIN, 3, 3),
    ),
    "ohlc-1h-yearly": Case(OHLC_1H, _around(["2024-01-01", "2025-01-01"], HOUR, 4, 4)),
    "trades-daily": Case(TRADES, _around(["2024-02-29", "2024-03-01", "2025-01-01"], 1, 3, 3)),
}

_PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _batches(pool_size: int) -> st.SearchStrategy[list[list[tuple[int, float]]]]:
    row = st.tuples(st.integers(0, pool_size - 1), st.integers(0, 1_000).map(float))
    return st.lists(st.lists(row, min_size=0, max_size=15), min_size=1, max_size=6)


@pytest.mark.parametrize("name", list(CASES))
@_PROPS
@given(data=st.data())
def test_any_writes_read_back_as_the_newest_union(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    batches = data.draw(_batches(len(case.pool)), label="batches")
    modes = data.draw(
        st.lists(
            st.sampled_from(["write", "writer"]), min_size=len(batches), max_size=len(batches)
        ),
        label="modes",
    )
    commit_rows = data.draw(st.integers(1, 40), label="commit_rows")
    expected: dict[object, tuple[int, float]] = {}
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        writer = None
        for batch, mode in zip(batches, modes, strict=True):
            for index, value in batch:
                expected[case.key_of(index)] = (case.pool[index], value)
            if mode == "write":
                if writer is not None:
                    writer.close()
                    writer = None
                store.write(case.key, case.rows(batch))
            else:
                writer = writer or store.writer(case.key, commit_rows=commit_rows)
                writer.add(case.rows(batch))
        if writer is not None:
            writer.close()
        back = store.read(case.key)
    value_col = "price" if case.key == TRADES else "close"
    key_col = "trade_id" if case.key == TRADES else "ts"
    got = dict(
        zip(
            back[key_col].to_list(),
            zip(back["ts"].to_list(), back[value_col].to_list(), strict=True),
            strict=True,
        )
    )
    assert got == expected
    assert back.height == len(expected)
    assert back["ts"].is_sorted()
    assert back.schema == case.rows([]).schema


@pytest.mark.parametrize("name", list(CASES))
@_PROPS
@given(data=st.data())
def test_read_returns_exactly_the_rows_in_range(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    picks = data.draw(
        st.lists(st.integers(0, len(case.pool) - 1), unique=True, max_size=len(case.pool)),
        label="rows",
    )
    # bounds: pool points, nudged by a nanosecond, or open
    bound = st.one_of(
        st.none(),
        st.tuples(st.sampled_from(case.pool), st.integers(-1, 1)).map(lambda p: p[0] + p[1]),
    )
    start, end = data.draw(bound, label="start"), data.draw(bound, label="end")
    if start is not None and end is not None and end < start:
        start, end = end, start
    rows = case.rows([(i, 1.0) for i in picks])
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        store.write(case.key, rows)
        got = store.read(case.key, start, end)
        lazy = store.scan(case.key, start, end).collect()
    want = sorted(
        t
        for t in rows["ts"].to_list()
        if (start is None or t >= start) and (end is None or t < end)
    )
    assert got["ts"].to_list() == want
    assert lazy["ts"].to_list() == want
