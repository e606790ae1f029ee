"""The commit pipeline (``Store.writer``): buffers per period, commits on bounds, never
loses what it was given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dccd_core.domain import CorruptFile, StoreError
from dccd_core.storage import Store, WriteResult
from dccd_core.storage import commit as commit_module
from dccd_core.storage.layout import period_path

from .helpers import OHLC_1M, TRADES, ns, ohlc, trades

DAY = 86_400 * 10**9


@pytest.fixture
def merges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The period of every period commit, in order."""
    seen: list[str] = []
    original = commit_module.commit_period

    def spy(root: Path, key: object, period: str, *args: object, **kw: object) -> WriteResult:
        seen.append(period)
        return original(root, key, period, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(commit_module, "commit_period", spy)
    return seen


def _pages(days: int, per_day: int, page: int) -> list:
    ts = ns("2024-02-27") + np.arange(days * per_day) * (DAY // per_day)
    ids = [str(i) for i in range(len(ts))]
    return [trades(ids[i : i + page], ts[i : i + page]) for i in range(0, len(ts), page)]


def test_each_period_written_once_per_pass(tmp_path: Path, merges: list[str]) -> None:
    store = Store(tmp_path)
    pages = _pages(days=4, per_day=1_000, page=100)
    with store.writer(TRADES, commit_rows=1_500, commit_seconds=3600) as writer:
        for page in pages:
            writer.add(page)
    assert merges == ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
    assert writer.result.rows == 4_000 == writer.result.new_rows
    assert len(writer.result.files) == 4
    assert store.read(TRADES).height == 4_000


def test_nothing_written_before_a_bound(tmp_path: Path, merges: list[str]) -> None:
    store = Store(tmp_path)
    writer = store.writer(TRADES, commit_rows=10_000, commit_seconds=3600)
    for page in _pages(days=2, per_day=100, page=50):
        writer.add(page)
    assert merges == [] and writer.buffered_rows == 200
    assert store.read(TRADES).height == 0
    flushed = writer.flush()
    assert flushed.rows == 200 and writer.buffered_rows == 0
    assert store.read(TRADES).height == 200
    writer.close()
    with pytest.raises(StoreError, match="closed"):
        writer.add(_pages(1, 1, 1)[0])


def test_open_period_is_written_when_it_alone_passes_the_bound(
    tmp_path: Path, merges: list[str]
) -> None:
    store = Store(tmp_path)
    with store.writer(TRADES, commit_rows=250, commit_seconds=3600) as writer:
        for page in _pages(days=1, per_day=1_000, page=100):
            writer.add(page)
    assert merges == ["2024-02-27"] * 4
    assert store.read(TRADES).height == 1_000


def test_time_bound_commits_everything(tmp_path: Path, merges: list[str]) -> None:
    store = Store(tmp_path)
    with store.writer(TRADES, commit_rows=10**9, commit_seconds=0) as writer:
        writer.add(_pages(days=1, per_day=10, page=10)[0])
        assert store.read(TRADES).height == 10
        assert merges == ["2024-02-27"]


def test_exception_in_the_block_still_flushes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(RuntimeError, match="connection lost"), store.writer(TRADES) as writer:
        writer.add(trades(["1", "2"], [ns("2024-01-01"), ns("2024-01-02")]))
        raise RuntimeError("connection lost")
    assert store.read(TRADES)["trade_id"].to_list() == ["1", "2"]


def test_failed_flush_keeps_the_original_error_and_unwritten_rows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write(TRADES, trades(["0"], [ns("2024-01-02")]))
    bad = period_path(tmp_path, TRADES, "2024-01-02")
    bad.write_bytes(b"garbage")
    writer = store.writer(TRADES)
    with pytest.raises(RuntimeError) as info, writer:
        writer.add(trades(["1", "2"], [ns("2024-01-01"), ns("2024-01-02")]))
        raise RuntimeError("boom")
    assert "flushing buffered rows" in "".join(info.value.__notes__)
    assert writer.buffered_rows == 1  # the corrupt period's rows were not dropped
    assert store.read(TRADES, "2024-01-01", "2024-01-02")["trade_id"].to_list() == ["1"]
    with pytest.raises(CorruptFile), store.writer(TRADES) as second:
        second.add(trades(["3"], [ns("2024-01-02")]))


def test_later_pages_win_inside_the_buffer(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = ns("2024-03-01")
    with store.writer(OHLC_1M) as writer:
        writer.add(ohlc([t, t + 60 * 10**9], 1.0))
        writer.add(ohlc([t], 2.0))
    assert store.read(OHLC_1M)["close"].to_list() == [2.0, 1.0]
    assert writer.result.rows == 3 and writer.result.new_rows == 2


def test_write_result_addition() -> None:
    a = WriteResult(2, 1, (Path("x"), Path("y")))
    b = WriteResult(3, 3, (Path("y"), Path("z")))
    assert a + b == WriteResult(5, 4, (Path("x"), Path("y"), Path("z")))
    assert sum([a, b], WriteResult()) == a + b


def test_coverage_is_recorded_only_once_the_rows_before_it_are_committed(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    day = ns("2024-01-01")
    writer = store.writer(TRADES, commit_rows=10**9, commit_seconds=1e9)
    writer.add(trades(["1"], [day + 5]))
    writer.cover(day, day + DAY)
    assert store.coverage(TRADES).ranges == ()  # the row is not durable yet: no claim
    writer.flush()
    assert store.coverage(TRADES).ranges == ((day, day + DAY),)
    writer.cover(day + DAY, day + 2 * DAY)  # nothing buffered: recorded at once
    assert store.coverage(TRADES).ranges == ((day, day + 2 * DAY),)
    writer.close()
