"""Stream flush cost over a day: does a flush cost what it carries, or what the day holds?

A busy pair (``--rows-per-day``, default 3M aggregate trades, BTCUSDT's order) streamed
and flushed every ``--flush-s`` (1 s): each flush commits the trades of that second
through ``Store.write`` (the stream's commit path) into the day's partition. Time is
compressed (flushes run back to back), the write pattern is kept: same rows per flush,
same number of flushes, same day file.

Two modes:

* ``windows`` (default, a few minutes): for each hour in ``--hours`` (0, 12, 23.5), the
  day file is first filled with the trades up to that hour in one backfill commit (a
  stream starting then), then ``--window-min`` minutes of 1 s flushes are timed.
  Reports flush p50/p99 (wall) and CPU per flush at each hour, and the day's write CPU
  extrapolated from them (trapezoid over the hours: flat per-flush CPU = linear cost).
* ``day``: every flush of the whole day (86,400 at 1 s), from an empty day; reports
  p50/p99 per 6-hour block and the measured total CPU. ``--rows-per-day`` scales it.

Each dataset starts with ``--history-days`` (365) small files of earlier days, as a
dataset that has been collected for a year has.

``--pairs 10`` adds the ten-pairs check: each tick writes one flush of every pair in
turn (as the stream's single flush thread does); lag = 1 s of buffering + the time the
tick's writes take, p99 over the window (target < 2 s).

Run against any checkout: ``PYTHONPATH=<checkout> python bench/bench_flush.py`` (the
store's segment policy is used when it has one, so ``main`` before segments and this
branch run the same script).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from dccd_core.domain import DatasetKey
from dccd_core.storage import Store

DAY_NS = 86_400 * 10**9
#: today (UTC): the day must still be open for segments to apply (a closed period's
#: commits are merge-rewrites), so a fixed date would turn the bench into that case
#: once it is a day old
DAY0 = time.time_ns() // DAY_NS * DAY_NS


@dataclass
class Pair:
    key: DatasetKey
    next_id: int
    rng: np.random.Generator


def trades_between(pair: Pair, start_ns: int, end_ns: int, rate_per_s: float) -> pl.DataFrame:
    """Poisson trades in ``[start_ns, end_ns)`` with consecutive ids (aggTrades)."""
    seconds = (end_ns - start_ns) / 1e9
    n = int(pair.rng.poisson(rate_per_s * seconds))
    ts = np.sort(pair.rng.integers(start_ns, end_ns, n, dtype=np.int64))
    ids = np.arange(pair.next_id, pair.next_id + n)
    pair.next_id += n
    return pl.DataFrame(
        {
            "ts": ts,
            "trade_id": ids.astype(str),
            "price": 60_000 + np.cumsum(pair.rng.normal(0, 1, n)),
            "amount": pair.rng.exponential(0.05, n),
            "side": np.where(pair.rng.random(n) < 0.5, "buy", "sell"),
        }
    )


def add_history(store: Store, pair: Pair, days: int) -> None:
    """One small file per earlier day (a dataset with a history has many files)."""
    if days:
        ts = DAY0 - np.arange(days, 0, -1, dtype=np.int64) * DAY_NS
        frame = pl.DataFrame(
            {
                "ts": ts,
                "trade_id": [f"h{i}" for i in range(days)],
                "price": np.ones(days),
                "amount": np.ones(days),
                "side": ["buy"] * days,
            }
        )
        store.write(pair.key, frame)


def flush(store: Store, pair: Pair, frame: pl.DataFrame) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.thread_time()
    store.write(pair.key, frame, provenance={"source": "binance", "transport": "ws"})
    return time.perf_counter() - wall, time.thread_time() - cpu


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def make_pairs(n: int) -> list[Pair]:
    return [
        Pair(
            DatasetKey.of("binance", f"P{i}/USDT", "trades"),
            3_000_000_000,
            np.random.default_rng(i),
        )
        for i in range(n)
    ]


def ticks(start_ns: int, count: int, flush_s: float) -> Iterator[tuple[int, int]]:
    step = int(flush_s * 1e9)
    for k in range(count):
        yield start_ns + k * step, start_ns + (k + 1) * step


def run_windows(args: argparse.Namespace) -> None:
    rate = args.rows_per_day / 86_400
    flushes = int(args.window_min * 60 / args.flush_s)
    cpu_by_hour: list[tuple[float, float]] = []
    print(
        f"rows/day {args.rows_per_day:,}, flush every {args.flush_s} s, "
        f"{flushes} flushes per window, pairs {args.pairs}"
    )
    print(
        "hour  day_rows   flush_p50_ms  flush_p99_ms  flush_max_ms  cpu_ms/flush  lag_p99_s(pairs)"
    )
    for hour in args.hours:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp)
            pairs = make_pairs(args.pairs)
            at = DAY0 + int(hour * 3600 * 1e9)
            for pair in pairs:  # history, then the day so far, as backfill commits
                add_history(store, pair, args.history_days)
                if at > DAY0:
                    store.write(pair.key, trades_between(pair, DAY0, at, rate))
            walls: list[float] = []
            cpus: list[float] = []
            lags: list[float] = []
            for lo, hi in ticks(at, flushes, args.flush_s):
                tick = 0.0
                for i, pair in enumerate(pairs):
                    wall, cpu = flush(store, pair, trades_between(pair, lo, hi, rate))
                    tick += wall
                    if i == 0:
                        walls.append(wall)
                        cpus.append(cpu)
                lags.append(args.flush_s + tick)
            rows = store.info(pairs[0].key).rows
            mean_cpu = float(np.mean(cpus))
            cpu_by_hour.append((hour, mean_cpu))
            print(
                f"{hour:>4}  {rows:>9,}  {pct(walls, 50):>12.1f}  {pct(walls, 99):>12.1f}  "
                f"{max(walls) * 1000:>12.1f}  {mean_cpu * 1000:>12.2f}  "
                f"{np.percentile(lags, 99):>8.2f}"
            )
    hours = [h for h, _ in cpu_by_hour]
    per_flush = [c for _, c in cpu_by_hour]
    if len(hours) > 1:
        day_cpu = float(np.trapezoid(per_flush, hours)) * 3600 / args.flush_s
        day_cpu += per_flush[0] * hours[0] * 3600 / args.flush_s
        day_cpu += per_flush[-1] * (24 - hours[-1]) * 3600 / args.flush_s
        print(f"day's write CPU (extrapolated from the windows, one pair): {day_cpu:,.0f} s")


def run_day(args: argparse.Namespace) -> None:
    rate = args.rows_per_day / 86_400
    flushes = int(86_400 / args.flush_s)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        pair = make_pairs(1)[0]
        add_history(store, pair, args.history_days)
        blocks: dict[int, list[float]] = {}
        cpu_total = 0.0
        started = time.perf_counter()
        for lo, hi in ticks(DAY0, flushes, args.flush_s):
            wall, cpu = flush(store, pair, trades_between(pair, lo, hi, rate))
            cpu_total += cpu
            blocks.setdefault(int((lo - DAY0) // (6 * 3600 * 10**9)), []).append(wall)
        elapsed = time.perf_counter() - started
        info = store.info(pair.key)
        print(
            f"rows/day {args.rows_per_day:,}, {flushes} flushes every {args.flush_s} s: "
            f"{info.rows:,} rows in {info.files} file(s)"
        )
        for block, walls in sorted(blocks.items()):
            print(
                f"hours {block * 6:>2}-{block * 6 + 6:<2}  p50 {pct(walls, 50):7.1f} ms  "
                f"p99 {pct(walls, 99):7.1f} ms  max {max(walls) * 1000:7.1f} ms"
            )
        print(
            f"total write CPU {cpu_total:.1f} s, wall {elapsed:.1f} s "
            f"({cpu_total / max(info.rows, 1) * 1e6:.2f} us CPU per row)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["windows", "day"], default="windows")
    parser.add_argument("--rows-per-day", type=int, default=3_000_000)
    parser.add_argument("--flush-s", type=float, default=1.0)
    parser.add_argument("--hours", type=float, nargs="+", default=[0.0, 12.0, 23.5])
    parser.add_argument("--window-min", type=float, default=5.0)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument(
        "--history-days", type=int, default=365, help="earlier day files in each dataset"
    )
    args = parser.parse_args()
    import dccd_core

    print(f"dccd_core from {os.path.dirname(os.path.dirname(dccd_core.__file__))}")
    (run_day if args.mode == "day" else run_windows)(args)


if __name__ == "__main__":
    main()
