"""Durability: SIGKILLed writers lose no committed row and leave nothing half-written;
concurrent writer processes lose nothing."""

from __future__ import annotations

import multiprocessing
import random
import re
import time
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from dccd_core.domain import DatasetKey
from dccd_core.storage import Store

from ._writers import (
    CRASH_KEY,
    SEGMENTS,
    batch_rows,
    crash_writer,
    flush_rows,
    merge_writer,
    segment_writer,
)

_PERIOD_FILE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?(\.seg-[0-9a-z]+)?\.parquet$")


@pytest.fixture(scope="module")
def ctx() -> Iterator[BaseContext]:
    """A forkserver that has imported the store once, so each child starts fast."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__package__ + "._writers"])
    yield context


def _committed(log: Path) -> list[int]:
    text = log.read_text() if log.exists() else ""
    return [int(line) for line in text.split("\n")[:-1]]  # a partial last line never counts


def _check_lake(root: Path) -> None:
    for path in root.rglob("*.parquet"):
        assert _PERIOD_FILE.match(path.name), f"temp or foreign file visible: {path}"
        pq.read_table(path)  # every visible file is whole


def _kill_while_writing(
    child: Any, log: Path, commits: int, pause_s: float, rng: random.Random
) -> list[int]:
    """Start ``child``; once it logged ``commits`` commits (20 s at most) let it run a
    random part of ``pause_s`` more, then SIGKILL it. Returns the commits it logged."""
    child.start()
    deadline = time.monotonic() + 20
    while len(_committed(log)) < commits and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, pause_s))
    child.kill()
    child.join()
    return _committed(log)


def _left_behind(root: Path, marker: str) -> bool:
    """Whether the crash left a ``marker`` file (a temp write, a compaction) behind."""
    folder = next(root.glob("trades/*/*"))
    return any(marker in p.name for p in folder.iterdir())


def test_sigkill_never_loses_a_committed_row(tmp_path: Path, ctx: BaseContext) -> None:
    rng = random.Random(20240229)
    store = Store(tmp_path)
    trials = 24
    expected: set[str] = set()
    killed_mid_write = 0
    for trial in range(trials):
        log = tmp_path / f"log-{trial}.txt"
        child = ctx.Process(  # type: ignore[attr-defined]
            target=crash_writer, args=(str(tmp_path), trial, str(log), trial % 2 == 1)
        )
        committed = _kill_while_writing(child, log, 1, 0.25, rng)  # after at least one write
        assert committed, "the child never committed a write"
        for index in committed:
            expected.update(batch_rows(trial, index)["trade_id"].to_list())
        killed_mid_write += _left_behind(tmp_path, ".tmp-")
        _check_lake(tmp_path)
        stored = set(store.read(CRASH_KEY)["trade_id"].to_list())
        assert expected <= stored, f"trial {trial}: lost {len(expected - stored)} rows"
        store.coverage(CRASH_KEY)  # the coverage record is never half-written either
    # the next write succeeds and sweeps the crash leftovers
    store.write(CRASH_KEY, batch_rows(999, 0))
    folder = next(tmp_path.glob("trades/*/*"))
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]
    assert expected <= set(store.read(CRASH_KEY)["trade_id"].to_list())
    back = store.read(CRASH_KEY)
    assert back["trade_id"].n_unique() == back.height and back["ts"].is_sorted()
    print(f"{trials} kills, {killed_mid_write} left a temp file behind")


def test_sigkill_while_flushing_segments_or_compacting_shows_no_row_twice(
    tmp_path: Path, ctx: BaseContext
) -> None:
    rng = random.Random(11)
    trials = 16
    expected: set[str] = set()
    mid_compaction = 0
    for trial in range(trials):
        log = tmp_path / f"log-{trial}.txt"
        child = ctx.Process(  # type: ignore[attr-defined]
            target=segment_writer, args=(str(tmp_path), trial, str(log))
        )
        committed = _kill_while_writing(child, log, 3, 0.3, rng)
        assert committed, "the child never committed a flush"
        for index in committed:
            expected.update(flush_rows(trial, index)["trade_id"].to_list())
        mid_compaction += _left_behind(tmp_path, ".compact-")
        _check_lake(tmp_path)
        glob = pl.read_parquet(str(tmp_path / "trades" / "**" / "*.parquet"))
        assert glob["trade_id"].n_unique() == glob.height, "a glob reader sees a row twice"
        back = Store(tmp_path, segments=SEGMENTS).read(CRASH_KEY)  # recovers first
        assert back["trade_id"].n_unique() == back.height
        assert expected <= set(back["trade_id"].to_list()), f"trial {trial}: rows lost"
        glob = pl.read_parquet(str(tmp_path / "trades" / "**" / "*.parquet"))
        assert set(glob["trade_id"].to_list()) == set(back["trade_id"].to_list())
    print(f"{trials} kills, {mid_compaction} during a compaction")


def test_two_processes_merge_writing_lose_nothing(tmp_path: Path, ctx: BaseContext) -> None:
    batches = 12
    workers = [
        ctx.Process(target=merge_writer, args=(str(tmp_path), w, batches))  # type: ignore[attr-defined]
        for w in (1, 2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    store = Store(tmp_path)
    candles = store.read(DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m"))
    assert candles.height == 200 + 50 * (batches - 1)
    assert candles["ts"].n_unique() == candles.height
    assert set(candles["close"].unique().to_list()) <= {1.0, 2.0}
    trades = store.read(CRASH_KEY)
    assert trades.height == 2 * batches * 300 == trades["trade_id"].n_unique()
    assert np.all(np.diff(trades["ts"].to_numpy()) >= 0)
    assert trades.filter(pl.col("trade_id").str.starts_with("w1")).height == batches * 300
