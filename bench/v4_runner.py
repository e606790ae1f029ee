"""One dccd v4 benchmark scenario per process, for ``bench/run_all.py``.

    .venv/bin/python -m bench.v4_runner '<json spec>'

prints one JSON row ``{scenario, wall_s, rows_per_s, requests, peak_rss_mb, ...}`` as
its last stdout line (or ``{"error": ...}``). Why a process per scenario: the peak
RSS of a process never goes down, so only a fresh process gives each scenario its own
figure; ``peak_rss_mb`` is the row's own figure when the area's script measures one,
else this process's ``ru_maxrss``.

Areas (``spec["area"]``), each delegating to the area's own script where it has one:

* ``backfill``: ``operations.backfill`` of 1m candles or trades from the fake Binance
  at ``spec["origin"]`` (the shared ``bench/fake_server.py`` process, also hit by
  dccd 3.8.1), as ``bench/bench_backfill.py`` does it (registry-built source, limiter
  opened, trades committed per day); the parent checks the lake against the truth;
* ``store``: one scenario of ``bench/bench_store.py``;
* ``dagster``: ``bench_direct`` / ``bench_dagster`` / ``bench_definitions`` of
  ``bench/bench_dagster.py``;
* ``stream``: one scenario of ``bench/bench_stream.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.measure import peak_rss_mb

__all__ = ["main", "run_spec"]


def _backfill(spec: dict[str, Any]) -> dict[str, Any]:
    from bench.bench_backfill import backfill_from
    from dccd_core.domain import DatasetKey
    from dccd_core.storage import Store

    kind = spec["kind"]
    key = (DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m") if kind == "candles"
           else DatasetKey.of("binance", "BTC/USDT", "trades"))
    # as bench_backfill: a day of the fake's trades (~860k) is committed once at the
    # day's end rather than merged ~9 times into a growing file
    store = Store(spec["root"], commit_rows=1_000_000 if kind == "trades" else 100_000)
    main = backfill_from(spec["origin"], key, store, int(spec["start_ns"]), int(spec["end_ns"]),
                         int(spec.get("concurrency", 6)))
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    result = asyncio.run(main)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "rows_written": result.rows_fetched,
            "client_requests": result.requests, "retries": result.retries,
            "cpu_s": round(time.process_time() - cpu0, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}


def _store(spec: dict[str, Any]) -> dict[str, Any]:
    from bench import bench_store

    if spec.get("n"):
        bench_store.N_TRADES = int(spec["n"])  # module constant read at call time
    row = bench_store._scenario(spec["name"], spec["root"])
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if spec["name"].startswith("write"):  # bench_store asserted the stored count
        n = bench_store.N_TRADES
        row["check"] = {"stored": n, "expected": n, "exact": True}
    return row


def _dagster(spec: dict[str, Any]) -> dict[str, Any]:
    from bench import bench_dagster

    which = spec["which"]
    if which == "defs":
        return bench_dagster.bench_definitions(int(spec.get("symbols", 50)))
    fn = {"direct": bench_dagster.bench_direct, "dagster": bench_dagster.bench_dagster,
          "cli": bench_dagster.bench_cli,
          "direct_process": bench_dagster.bench_direct_process}[which]
    row = fn(spec["origin"], spec["start"], spec["end"], "1m")
    if which in ("cli", "direct_process"):  # the row's figures are its child's
        return row
    row["sampled_peak_rss_mb"] = row["peak_rss_mb"]
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return row


def _stream(spec: dict[str, Any]) -> dict[str, Any]:
    from bench import bench_stream

    return bench_stream.run_scenario(spec["name"], int(spec["n"]), float(spec["rate"]),
                                     float(spec.get("flush_s", 1.0)))


AREAS = {"backfill": _backfill, "store": _store, "dagster": _dagster, "stream": _stream}


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in this process; never raise (the error goes in the row)."""
    try:
        return AREAS[spec["area"]](spec)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        return {"error": error, "peak_rss_mb": round(peak_rss_mb(), 1)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(run_spec(json.loads(args[0])), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
