"""Backfill throughput against the fake Binance: a year of 1m candles and 1M trades.

Each scenario runs in its own process (so ``peak_rss_mb`` is that scenario's own peak),
and the fake exchange runs in another (so its CPU and memory are not counted). The
client is the real path: registry-built ``BinanceSource`` -> paginators -> ``Store``.
The fake has no weight limit here and the client's limiter is opened accordingly
(the real Binance budget would make this a benchmark of ``WeightLimiter``).

After every scenario the store is compared with the fake's truth (every row, every
value; per day, so the check stays small): a fast run that loses a trade fails.

Scenarios: candles (1y of 1m) and trades (1M) at 0 ms and at 50 ms added latency per
request (``FaultInjector(latency_s=0.05)``), concurrent (6 in flight, the default) and,
at 50 ms, the sequential one-page-at-a-time baseline (``concurrency=1``: the same code
path with one request in flight). ``--big`` adds a 10M-trade backfill (memory bound).

``python -m bench.bench_backfill [--big] [--skip-sequential]`` prints one row per
scenario; ``run()`` returns them as {scenario, wall_s, rows_per_s, requests,
peak_rss_mb, ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import sys
import tempfile
import time
from typing import Any

__all__ = ["run"]

LISTING = "2023-12-31"
CANDLES_START, CANDLES_END = "2024-01-01", "2025-01-01"
TRADES_START = "2024-01-02"
DAY_NS = 86_400 * 10**9
COMMIT_ROWS = 1_000_000


def _serve(conn: Any, latency_s: float) -> None:
    """The fake exchange's process: serve until the parent closes the pipe."""
    from dccd_core.domain import to_ns
    from tests.fakes.binance import FakeBinance
    from tests.fakes.server import FaultInjector, serve

    async def main() -> None:
        faults = FaultInjector(latency_s=latency_s) if latency_s else None
        fake = FakeBinance.default(
            listing_ms=to_ns(LISTING) // 1_000_000, weight_limit=10**12, faults=faults
        )
        async with serve(fake.app()) as origin:
            conn.send(origin)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)  # returns when the parent is done

    with contextlib.suppress(EOFError):
        asyncio.run(main())


def _trades_end_ns(n_trades: int) -> tuple[int, int]:
    from dccd_core.domain import to_ns
    from tests.fakes.binance import FakeBinance

    fake = FakeBinance.default(listing_ms=to_ns(LISTING) // 1_000_000)
    data = fake.market()
    start = to_ns(TRADES_START)
    k0 = data.first_k_at(start // 1_000_000)
    end_ms = data.trade_ms_scalar(k0 + n_trades)
    return start, end_ms * 1_000_000


def _verify(store: Any, key: Any, start: int, end: int) -> int:
    """Compare the store with the truth day by day; return the rows checked."""
    import polars as pl

    from dccd_core.domain import to_ns
    from tests.fakes.binance import FakeBinance

    fake = FakeBinance.default(listing_ms=to_ns(LISTING) // 1_000_000)
    checked = 0
    step = 30 * DAY_NS if key.span is not None else DAY_NS
    for a in range(start, end, step):
        b = min(end, a + step)
        got = store.read(key, a, b)
        if key.span is not None:
            truth = fake.truth_candles(a, b, key.span.label)
        else:
            truth = fake.truth_trades(a, b)
            got = got.sort("trade_id")
            truth = truth.sort("trade_id")
        truth = truth.select(got.columns).cast(dict(got.schema))  # type: ignore[arg-type]
        if not got.equals(truth):
            missing = truth.height - got.height
            raise AssertionError(
                f"{key} [{a}, {b}): store differs from the truth ({got.height} rows stored, "
                f"{truth.height} expected, {missing} missing)"
            )
        checked += got.height
    del pl
    return checked


async def backfill_from(
    origin: str, key: Any, store: Any, start: int, end: int, concurrency: int
) -> Any:
    """The benchmarked backfill: a registry-built Binance source at ``origin``, its
    limiter opened (the fake has no weight limit), closed at the end."""
    from dccd_core.operations.backfill import backfill
    from dccd_core.sources.registry import build_source
    from dccd_core.transport import WeightLimiter

    async with build_source("binance", rest_url=origin) as source:
        source.http.limiter = WeightLimiter(10**12)  # type: ignore[attr-defined]
        return await backfill(
            key, start=start, end=end, store=store, source=source, concurrency=concurrency
        )


def _scenario(name: str, kind: str, latency_s: float, concurrency: int, n_trades: int) -> dict:
    from bench.measure import peak_rss
    from dccd_core.domain import DatasetKey, to_ns
    from dccd_core.storage import Store

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, latency_s), daemon=True)
    server.start()
    origin = parent.recv()
    if kind == "candles":
        key = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
        start, end = to_ns(CANDLES_START), to_ns(CANDLES_END)
    else:
        key = DatasetKey.of("binance", "BTC/USDT", "trades")
        start, end = _trades_end_ns(n_trades)

    with tempfile.TemporaryDirectory(prefix=f"dccd-bench-{name}-") as tmp, peak_rss() as peak:
        # a day of the fake's trades (~860k) is committed once at the day's end rather
        # than merged 9 times into a growing file (the store's merge reads the file)
        store = Store(tmp, commit_rows=COMMIT_ROWS if kind == "trades" else 100_000)

        t0 = time.perf_counter()
        cpu0 = time.process_time()
        result = asyncio.run(backfill_from(origin, key, store, start, end, concurrency))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        checked = _verify(store, key, start, end)
    parent.close()
    server.join(10)
    if server.is_alive():
        server.terminate()
    if checked != result.rows_fetched:
        raise AssertionError(f"{name}: fetched {result.rows_fetched}, verified {checked}")
    pages_min = -(-checked // 1000)
    return {
        "scenario": name,
        "wall_s": round(wall, 2),
        "rows_per_s": round(checked / wall),
        "requests": result.requests,
        "peak_rss_mb": round(peak["mb"], 1),
        "rows": checked,
        "min_pages": pages_min
        if kind == "trades"
        else -(-((end - start) // 60_000_000_000) // 1000),
        "cpu_s": round(cpu, 2),
        "retries": result.retries,
        "verified": True,
    }


def _child(args: tuple[Any, ...], queue: Any) -> None:
    try:
        queue.put(_scenario(*args))
    except BaseException as exc:  # report, do not hang the parent
        queue.put({"scenario": args[0], "error": f"{type(exc).__name__}: {exc}"})


SCENARIOS: list[tuple[str, str, float, int, int]] = [
    ("candles_1y_1m_0ms", "candles", 0.0, 6, 0),
    ("trades_1M_0ms", "trades", 0.0, 6, 1_000_000),
    ("candles_1y_1m_50ms", "candles", 0.05, 6, 0),
    ("candles_1y_1m_50ms_sequential", "candles", 0.05, 1, 0),
    ("trades_1M_50ms", "trades", 0.05, 6, 1_000_000),
    ("trades_1M_50ms_sequential", "trades", 0.05, 1, 1_000_000),
]
BIG = ("trades_10M_0ms", "trades", 0.0, 6, 10_000_000)


def run(big: bool = False, sequential: bool = True, only: str | None = None) -> list[dict]:
    """Every scenario in its own process; one row each, plus the 50 ms speed-ups."""
    ctx = multiprocessing.get_context("spawn")
    rows: list[dict] = []
    chosen = [s for s in SCENARIOS if sequential or not s[0].endswith("_sequential")]
    if big:
        chosen.append(BIG)
    if only:
        chosen = [s for s in chosen if only in s[0]]
    for args in chosen:
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(args, queue))
        child.start()
        row = queue.get()
        child.join()
        rows.append(row)
        print(json.dumps(row), flush=True)
    by_name = {r["scenario"]: r for r in rows if "wall_s" in r}
    for kind in ("candles_1y_1m", "trades_1M"):
        fast, slow = by_name.get(f"{kind}_50ms"), by_name.get(f"{kind}_50ms_sequential")
        if fast and slow:
            row = {
                "scenario": f"{kind}_50ms_speedup_vs_sequential",
                "wall_s": round(slow["wall_s"] / fast["wall_s"], 2),
                "rows_per_s": 0,
                "requests": 0,
                "peak_rss_mb": 0.0,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="add the 10M-trade backfill")
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    args = parser.parse_args(argv)
    rows = run(big=args.big, sequential=not args.skip_sequential, only=args.only)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
