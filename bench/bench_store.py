"""Store benchmarks (a script, not a test).

    .venv/bin/python bench/bench_store.py [--keep DIR]

Scenarios (targets from issue 2):

- ``write_trades_10d``: 1,000,000 trades, 10 days of them, arriving as 1,000-row pages
  through ``Store.writer`` (default bounds): target >= 1M rows/s end to end.
- ``write_trades_1d``: the same volume inside ONE day (a busy pair): the 100k-row
  commit bound makes the open day's file be rewritten ~10 times. Reported for honesty.
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
from collections.abc import Callable
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
        "read_day_1m": _read_day,
        "append_candle_1m": _append_candle,
    }
    return body[name](root)


def _child(name: str, root: str, queue: Any) -> None:
    queue.put(_scenario(name, root))


def run(keep: str | None = None) -> list[dict[str, Any]]:
    """Run every scenario in its own process; one result row per scenario."""
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for name in ("write_trades_10d", "write_trades_1d", "read_day_1m", "append_candle_1m"):
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
    args = parser.parse_args(argv)
    for row in run(args.keep):
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
