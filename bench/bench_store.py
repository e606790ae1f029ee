"""Store benchmarks (a script, not a test).

    .venv/bin/python bench/bench_store.py [--keep DIR]

Scenarios (targets from issue 2):

- ``write_trades_10d``: 1,000,000 trades, 10 days of them, arriving as 1,000-row pages
  through ``Store.writer`` (default bounds): target >= 1M rows/s end to end.
- ``write_trades_1d``: the same volume inside ONE day (a busy pair): the 100k-row
  commit bound makes ~10 commits into the day being filled (segments, then one
  compaction when the writer closes: see ``segments``, "Filling a closed period").
- ``backfill_day_2m``: 2,000,000 trades of ONE closed day committed the way a backfill
  does (``operations.backfill.commit_loop``): 1,000-row pages staged into 20k-row
  ``writer.add`` calls, an explicit ``flush()`` with ``cover()`` every 100k rows (20
  bounded commits). Reports the first and last commit's time: a flat cost per commit
  means the day costs what it holds (issue 12's big-day target), a growing one that
  each commit rewrites the day.
- ``read_day_1m``: one day of 1m candles read from a store holding 3 years of them:
  target < 20 ms (median of 20 reads; first read reported too).
- ``append_candle_1m``: appending one new candle to that store: target < 50 ms and
  exactly one period file rewritten (median of 20 appends).

Each scenario runs in its own process so ``peak_rss_mb`` is that scenario's own peak.
``run()`` returns rows {scenario, wall_s, rows_per_s, requests, peak_rss_mb, ...} for
``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from dccd_core.domain import DatasetKey
from dccd_core.storage import Store

__all__ = ["main", "run"]

TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
START = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
DAY = 86_400 * 10**9
MINUTE = 60 * 10**9
N_TRADES = 1_000_000
PAGE = 1_000


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _row(scenario: str, wall_s: float, rows: int) -> dict[str, Any]:
    """The columns every scenario reports (no requests: the store alone)."""
    return {
        "scenario": scenario,
        "wall_s": wall_s,
        "rows_per_s": rows / wall_s,
        "requests": 0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _trade_pages(days: int) -> list[pl.DataFrame]:
    """1M trades as parsed pages (as a source would hand them over), ts ascending."""
    rng = np.random.default_rng(7)
    ts = START + np.sort(rng.integers(0, days * DAY, N_TRADES)).astype(np.int64)
    ids = pl.Series("trade_id", np.arange(3_000_000_000, 3_000_000_000 + N_TRADES)).cast(pl.String)
    frame = pl.DataFrame(
        {
            "ts": ts,
            "trade_id": ids,
            "price": np.round(42_000 + rng.normal(0, 50, N_TRADES).cumsum() / 100, 2),
            "amount": np.round(rng.exponential(0.05, N_TRADES), 5),
            "side": np.where(rng.random(N_TRADES) < 0.5, "buy", "sell"),
        }
    )
    return [frame.slice(i, PAGE) for i in range(0, N_TRADES, PAGE)]


def _write_trades(root: str, days: int) -> dict[str, Any]:
    pages = _trade_pages(days)
    store = Store(root)
    cpu = _cpu_s()
    started = time.perf_counter()
    with store.writer(TRADES, provenance={"source": "bench"}) as writer:
        for page in pages:
            writer.add(page)
    wall = time.perf_counter() - started
    cpu = _cpu_s() - cpu
    assert store.inventory()[0].rows == N_TRADES
    return {
        **_row(f"write_trades_{days}d", wall, N_TRADES),
        "files_written": len(writer.result.files),
        "cpu_s": cpu,
        "target": ">= 1,000,000 rows/s",
    }


N_BIG_DAY = 2_000_000
BIG_COMMIT = 100_000
STAGE = 20_000


def _big_day_pages() -> Iterator[pl.DataFrame]:
    """2M aggregate trades of 2024-01-01 (closed long ago), 1,000-row pages, ts ascending.

    Made 100k rows at a time, as a paginator hands them over: the day is never held
    whole here, so the peak RSS is the store's.
    """
    rng = np.random.default_rng(12)
    step = DAY // N_BIG_DAY
    price = 42_000.0
    for lo in range(0, N_BIG_DAY, BIG_COMMIT):
        n = min(BIG_COMMIT, N_BIG_DAY - lo)
        ts = START + (np.arange(lo, lo + n, dtype=np.int64) * step) + rng.integers(0, step, n)
        moves = np.round(price + rng.normal(0, 50, n).cumsum() / 100, 2)
        price = float(moves[-1])
        block = pl.DataFrame(
            {
                "ts": ts,
                "trade_id": pl.Series(np.arange(900_000_000 + lo, 900_000_000 + lo + n)).cast(
                    pl.String
                ),
                "price": moves,
                "amount": np.round(rng.exponential(0.05, n), 5),
                "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
            }
        )
        yield from (block.slice(i, PAGE) for i in range(0, n, PAGE))


def _backfill_day(root: str) -> dict[str, Any]:
    pages = _big_day_pages()
    store = Store(root)
    commits: list[float] = []
    cpu = _cpu_s()
    started = time.perf_counter()
    with store.writer(
        TRADES, provenance={"source": "bench"}, commit_rows=2**62, commit_seconds=float("inf")
    ) as writer:
        staged: list[pl.DataFrame] = []
        staged_rows = buffered = 0
        for page in pages:
            staged.append(page)
            staged_rows += page.height
            buffered += page.height
            if staged_rows >= STAGE:
                writer.add(pl.concat(staged))
                staged, staged_rows = [], 0
            if buffered >= BIG_COMMIT:
                if staged:
                    writer.add(pl.concat(staged))
                    staged, staged_rows = [], 0
                began = time.perf_counter()
                writer.cover(START, int(page.get_column("ts")[-1]) + 1)
                writer.flush()
                commits.append(time.perf_counter() - began)
                buffered = 0
        began = time.perf_counter()
        if staged:
            writer.add(pl.concat(staged))
    close_s = time.perf_counter() - began  # the last commit and the day's compaction
    wall = time.perf_counter() - started
    cpu = _cpu_s() - cpu
    info = store.inventory()[0]
    assert info.rows == N_BIG_DAY, info
    return {
        **_row("backfill_day_2m", wall, N_BIG_DAY),
        "commits": len(commits),
        "commit_first_s": commits[0],
        "commit_last_s": commits[-1],
        "commit_max_s": max(commits),
        "close_s": close_s,
        "commits_total_s": sum(commits) + close_s,
        "files_after": info.files,
        "cpu_s": cpu,
        "target": "linear: last commit ~ first; peak RSS < 400 MB",
    }


def _candles(start: int, count: int) -> pl.DataFrame:
    rng = np.random.default_rng(start % 1_000_003)
    close = 42_000 + rng.normal(0, 10, count).cumsum()
    return pl.DataFrame(
        {
            "ts": start + np.arange(count, dtype=np.int64) * MINUTE,
            "open": close,
            "high": close + 5,
            "low": close - 5,
            "close": close,
            "volume": rng.exponential(3, count),
            "quote_volume": rng.exponential(3, count) * 42_000,
            "trades": rng.integers(1, 500, count),
        }
    )


def _three_years(root: str) -> Store:
    store = Store(root)
    minutes = 3 * 365 * 1_440
    with store.writer(CANDLES, commit_rows=200_000) as writer:
        for offset in range(0, minutes, 100_000):
            writer.add(_candles(START + offset * MINUTE, min(100_000, minutes - offset)))
    return store


def _read_day(root: str) -> dict[str, Any]:
    store = _three_years(root)
    files = store.inventory()[0].files
    day = START + 400 * DAY
    timings = []
    for i in range(20):
        begin = day + (i % 5) * DAY
        started = time.perf_counter()
        frame = store.read(CANDLES, begin, begin + DAY)
        timings.append(time.perf_counter() - started)
        assert frame.height == 1_440
    median = statistics.median(timings)
    return {
        **_row("read_day_1m", median, 1_440),
        "first_read_s": timings[0],
        "store_files": files,
        "target": "< 0.020 s",
    }


def _append_candle(root: str) -> dict[str, Any]:
    store = _three_years(root)
    last = store.last_ts(CANDLES)
    assert last is not None
    timings = []
    rewritten = set()
    for i in range(1, 21):
        row = _candles(last + i * MINUTE, 1)
        started = time.perf_counter()
        result = store.write(CANDLES, row)
        timings.append(time.perf_counter() - started)
        assert result.new_rows == 1
        rewritten.add(len(result.files))
    median = statistics.median(timings)
    return {
        **_row("append_candle_1m", median, 1),
        "max_wall_s": max(timings),
        "files_rewritten_per_append": max(rewritten),
        "target": "< 0.050 s, 1 file",
    }


def _scenario(name: str, root: str) -> dict[str, Any]:
    body: dict[str, Callable[[str], dict[str, Any]]] = {
        "write_trades_10d": lambda r: _write_trades(r, 10),
        "write_trades_1d": lambda r: _write_trades(r, 1),
        "backfill_day_2m": _backfill_day,
        "read_day_1m": _read_day,
        "append_candle_1m": _append_candle,
    }
    return body[name](root)


def _child(name: str, root: str, queue: Any) -> None:
    queue.put(_scenario(name, root))


SCENARIOS = ("write_trades_10d", "write_trades_1d", "read_day_1m", "append_candle_1m")
"""What ``run()`` runs by default (``run_all``); ``--only backfill_day_2m`` for issue 12's."""


def run(keep: str | None = None, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every scenario in its own process; one result row per scenario."""
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for name in only or SCENARIOS:
        with tempfile.TemporaryDirectory(prefix=f"dccd-bench-{name}-") as tmp:
            root = str(Path(keep) / name) if keep else tmp
            queue = ctx.Queue()
            child = ctx.Process(target=_child, args=(name, root, queue))
            child.start()
            row = queue.get()
            child.join()
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print one line per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="write the stores under this folder and keep them")
    parser.add_argument(
        "--only", action="append", help="run only this scenario (repeatable), e.g. backfill_day_2m"
    )
    args = parser.parse_args(argv)
    for row in run(args.keep, args.only):
        extra = {
            k: v
            for k, v in row.items()
            if k not in {"scenario", "wall_s", "rows_per_s", "requests", "peak_rss_mb"}
        }
        print(
            f"{row['scenario']:<18} wall {row['wall_s'] * 1000:9.1f} ms  "
            f"{row['rows_per_s']:>13,.0f} rows/s  peak RSS {row['peak_rss_mb']:7.1f} MB  "
            + "  ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
