"""Live stream end to end: a real loopback WebSocket -> parse -> buffer -> durable flush.

The exchange is a fake Binance combined stream (``/stream?streams=btcusdt@aggTrade``)
running in its own process (so the sender does not share the consumer's core or
event loop), sending one aggTrade per WebSocket message as Binance does, with
consecutive aggregate ids and ``T``/``E`` stamped with the send time (ms). The consumer
is the real ``dccd_core.operations.stream`` writing into a real ``Store``.

Measured per scenario:

* ``msgs_per_s``: messages taken from the socket to durable (in the store) per second,
  with zero loss asserted (every id once, none missing);
* ``latency_p50_ms`` / ``latency_p99_ms``: exchange timestamp -> durable. The store is
  wrapped so that every flush records, right after its merge-write returned, the
  durable time minus the ``ts`` of each row it made durable;
* ``peak_rss_mb``: the consumer process's peak RSS during the scenario (sampled), and
  ``rss_end_mb``; the server's memory is not counted.

Scenarios: ``paced`` at 50k msg/s (the throughput target: does the consumer keep up?)
and at 20k msg/s (latency when it does; Binance BTCUSDT's busiest minutes are below
that), and ``blast`` (the server sends as fast as it can). ``consumer_cpu_us_per_msg``
is the consumer's CPU per message over all its threads: on a loaded machine the wall
figures measure the neighbours too, the CPU figure much less.

``python -m bench.bench_stream`` prints one row per scenario.

Exchange-paced scenarios (``--paced``): the sender (its own process) wakes every 10 ms
and sends each due trade as its own frame, as exchanges do: 2,000 msg/s on one symbol,
20 symbols x 100 msg/s, and 1 symbol x 20 msg/s for ``--idle-duration`` (default 10
min). Each row gives the stream process's own CPU (``time.process_time`` of a process
that runs only the stream) per message and as a share of a core; ``--only`` picks one,
``--duration`` shortens the others, ``--flush-interval`` sets the stream's (default 5 s,
the product's). ``--dagster`` runs ``dagster dev`` against a fake Binance sending 2,000
aggTrades/s as single frames and sums the CPU of every process of its group over
``--duration`` once trades land (the run worker included), then compares the stored
trades with the fake's truth::

    python -m bench.bench_stream --paced --duration 60 --idle-duration 600
    python -m bench.bench_stream --paced --only idle --idle-duration 120
    python -m bench.bench_stream --dagster --duration 60

Why the previous version peaked at 2.2 GB: it pre-encoded 500k frames with
``orjson.dumps``, and each small ``bytes`` orjson returns keeps ~4 KB of allocator
memory (measured: 4.1 KB per 181-byte frame), i.e. 2 GB of benchmark input. The
stream itself never held that: frames arrive from the socket as exact-size objects.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

import polars as pl
import psutil

from bench.stream_dagster import run_dagster_dev
from bench.stream_fakes import FIRST_ID, TICK_S, paced_server_main, server_main
from dccd_core.domain import NS_PER_MS, DatasetKey
from dccd_core.operations.stream import FlushReport, stream
from dccd_core.sources.registry import build_source
from dccd_core.storage import Store
from dccd_core.transport.ws import WsConfig

__all__ = ["run", "run_dagster_dev", "run_paced", "run_paced_all", "run_scenario"]

KEY = DatasetKey.of("binance", "BTC/USDT", "trades")


# -- the consumer ------------------------------------------------------------------------


class DurableClock:
    """A ``StreamStore`` that records, per flush, now - ts of the rows it made durable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.latencies_ns: list[pl.Series] = []

    def write(
        self, key: DatasetKey, rows: pl.DataFrame, *, provenance: Mapping[str, str]
    ) -> Any:
        result = self.store.write(key, rows, provenance=provenance)
        durable = time.time_ns()
        self.latencies_ns.append(durable - rows.get_column("ts"))
        return result

    def last_ts(self, key: DatasetKey) -> int | None:
        return self.store.last_ts(key)

    def record_coverage(self, key: DatasetKey, start: int, end: int) -> Any:
        return self.store.record_coverage(key, start, end)


class RssSampler:
    """Peak RSS of this process over a scenario (sampled every ``interval_s``)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._proc = psutil.Process()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


async def _consume(origin: str, n: int, root: str, flush_interval_s: float) -> dict[str, Any]:
    clock = DurableClock(Store(root))
    stop = asyncio.Event()
    reports: list[FlushReport] = []

    def on_flush(report: FlushReport) -> None:
        reports.append(report)
        if report.total_rows >= n:
            stop.set()

    started = time.perf_counter()
    async with build_source(
        "binance", rest_url=origin, ws_url=origin.replace("http", "ws")
    ) as source:
        final = await stream(
            "binance", ["BTC/USDT"], "trades", store=clock, source=source,
            flush_interval_s=flush_interval_s, stop=stop, on_flush=on_flush,
            max_runtime_s=300.0, ws_config=WsConfig(idle_timeout_s=30.0),
        )
    wall = time.perf_counter() - started
    stored = clock.store.read(KEY)
    ids = stored.get_column("trade_id").cast(pl.Int64)
    assert stored.height == n, f"rows lost: {stored.height} of {n}"
    assert ids.is_unique().all() and ids.min() == FIRST_ID and ids.max() == FIRST_ID + n - 1
    assert final.unhealed_gaps == 0
    latency_ms = pl.concat(clock.latencies_ns) / NS_PER_MS
    return {
        "wall_s": round(wall, 3),
        "rows_per_s": round(n / wall),
        "msgs_per_s": round(n / wall),
        "latency_p50_ms": round(float(latency_ms.quantile(0.5) or 0), 1),  # type: ignore[arg-type]
        "latency_p99_ms": round(float(latency_ms.quantile(0.99) or 0), 1),  # type: ignore[arg-type]
        "latency_max_ms": round(float(latency_ms.max() or 0), 1),  # type: ignore[arg-type]
        "flushes": final.flushes,
        "reconnects": final.reconnects,
    }


def run_scenario(name: str, n: int, rate: float, flush_interval_s: float) -> dict[str, Any]:
    """One scenario: a fresh server process and store; the consumer in this process."""
    ctx = mp.get_context("spawn")
    port_box = ctx.Queue()
    server = ctx.Process(target=server_main, args=(n, rate, port_box), daemon=True)
    server.start()
    try:
        origin = f"http://127.0.0.1:{port_box.get(timeout=30)}"
        with tempfile.TemporaryDirectory() as root, RssSampler() as rss:
            cpu0 = time.process_time()
            row = asyncio.run(_consume(origin, n, root, flush_interval_s))
            cpu_us = (time.process_time() - cpu0) / n * 1e6
    finally:
        server.terminate()
        server.join(10)
    return {
        "scenario": name,
        **row,
        "requests": 0,
        "peak_rss_mb": round(rss.peak / 2**20),
        "rss_end_mb": round(psutil.Process().memory_info().rss / 2**20),
        "target_rate": rate or "max",
        "flush_interval_s": flush_interval_s,
        # all consumer threads (socket, parse, flush); 1e6 / this = msgs per CPU-second
        "consumer_cpu_us_per_msg": round(cpu_us, 1),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def run(n: int = 500_000) -> list[dict[str, Any]]:
    """Three scenarios of ``n`` messages (about a minute on an idle 2-core machine)."""
    return [
        run_scenario(f"binance aggTrade WS paced 50k/s {n:,} msgs", n, 50_000.0, 1.0),
        run_scenario(f"binance aggTrade WS paced 20k/s {n:,} msgs", n, 20_000.0, 1.0),
        run_scenario(f"binance aggTrade WS blast {n // 2:,} msgs", n // 2, 0.0, 1.0),
    ]


# -- arriving like an exchange: single frames at an exchange's pace -------------------------
#
# An exchange sends each trade as it happens: a few frames per read, never a 50k burst.
# The sender wakes every ``TICK_S`` and sends, one WebSocket message per trade, what the
# clock says is due for each symbol. What counts here is CPU per message of the stream
# process alone (the sender runs in a third process), and for the idle case its share of
# a core: fixed costs per read or per wake-up show up here and nowhere in the bursts above.

PACED_SYMBOLS = (
    "BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT", "DOT/USDT",
    "LTC/USDT", "LINK/USDT", "AVAX/USDT", "ATOM/USDT", "UNI/USDT", "ETC/USDT", "XLM/USDT",
    "BCH/USDT", "FIL/USDT", "TRX/USDT", "NEAR/USDT", "APT/USDT", "ARB/USDT",
)
def _paced_consumer_main(
    origin: str, symbols: tuple[str, ...], duration_s: float, flush_interval_s: float,
    out: Any,
) -> None:
    """The stream process: stream for ``duration_s``; its own CPU time, then the checks."""
    with tempfile.TemporaryDirectory() as root:
        clock = DurableClock(Store(root))

        async def consume() -> FlushReport:
            ws_url = origin.replace("http", "ws")
            async with build_source("binance", rest_url=origin, ws_url=ws_url) as source:
                return await stream(
                    "binance", list(symbols), "trades", store=clock, source=source,
                    flush_interval_s=flush_interval_s, max_runtime_s=duration_s,
                    ws_config=WsConfig(idle_timeout_s=30.0),
                )

        wall0, cpu0 = time.perf_counter(), time.process_time()
        final = asyncio.run(consume())
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
        n = 0
        for symbol in symbols:
            ids = clock.store.read(DatasetKey.of("binance", symbol, "trades")).get_column(
                "trade_id"
            ).cast(pl.Int64)
            # zero loss: every id from the first one sent, once
            assert ids.len() and ids.is_unique().all(), f"{symbol}: duplicated or no rows"
            assert ids.min() == FIRST_ID and ids.max() == FIRST_ID + ids.len() - 1, (
                f"{symbol}: ids missing"
            )
            n += ids.len()
        assert final.reconnects == 0, "the connection dropped: ids restart, counts are off"
        latency_ms = pl.concat(clock.latencies_ns) / NS_PER_MS
        out.put({
            "msgs": n,
            "wall_s": round(wall_s, 1),
            "cpu_s": round(cpu_s, 3),
            "cpu_us_per_msg": round(cpu_s / n * 1e6, 1),
            "cpu_pct_of_core": round(cpu_s / wall_s * 100, 2),
            "latency_p50_ms": round(float(latency_ms.quantile(0.5) or 0), 1),  # type: ignore[arg-type]
            "latency_p99_ms": round(float(latency_ms.quantile(0.99) or 0), 1),  # type: ignore[arg-type]
            "flushes": final.flushes,
            "reconnects": final.reconnects,
            "unhealed_gaps": final.unhealed_gaps,
        })


def run_paced(
    name: str, symbols: int, rate_per_symbol: float, duration_s: float,
    flush_interval_s: float = 5.0,
) -> dict[str, Any]:
    """One paced scenario: sender and stream each in their own process."""
    ctx = mp.get_context("spawn")
    port_box, out = ctx.Queue(), ctx.Queue()
    server = ctx.Process(
        target=paced_server_main, args=(rate_per_symbol, TICK_S, port_box), daemon=True
    )
    server.start()
    try:
        origin = f"http://127.0.0.1:{port_box.get(timeout=30)}"
        consumer = ctx.Process(
            target=_paced_consumer_main,
            args=(origin, PACED_SYMBOLS[:symbols], duration_s, flush_interval_s, out),
        )
        consumer.start()
        row = out.get(timeout=duration_s + 300)
        consumer.join(30)
    finally:
        server.terminate()
        server.join(10)
    return {
        "scenario": name,
        "symbols": symbols,
        "target_msgs_per_s": symbols * rate_per_symbol,
        "flush_interval_s": flush_interval_s,
        **row,
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def run_paced_all(
    duration_s: float = 60.0, idle_duration_s: float = 600.0, only: str | None = None,
    flush_interval_s: float = 5.0,
) -> list[dict[str, Any]]:
    """The three arrival patterns of issue #17 (the idle one runs ``idle_duration_s``);
    ``only``: ``2000``, ``20x100`` or ``idle``. ``flush_interval_s``: the stream's (5 s:
    its default and Dagster's; each flush writes every symbol, so a shorter interval
    adds the store's cost per write and symbol, ~6 ms on a 2-core machine)."""
    plan = {
        "2000": (f"2,000 msg/s single frames, 1 symbol, {duration_s:.0f} s", 1, 2000.0,
                 duration_s),
        "20x100": (f"20 symbols x 100 msg/s, {duration_s:.0f} s", 20, 100.0, duration_s),
        "idle": (f"1 symbol x 20 msg/s (idle), {idle_duration_s:.0f} s", 1, 20.0,
                 idle_duration_s),
    }
    return [
        run_paced(*args, flush_interval_s=flush_interval_s)
        for name, args in plan.items()
        if only in (None, name)
    ]

def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paced", action="store_true",
                        help="the exchange-paced scenarios (single frames) instead of bursts")
    parser.add_argument("--dagster", action="store_true",
                        help="2,000 aggTrades/s single frames through `dagster dev`")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds per paced / dagster scenario (default 60)")
    parser.add_argument("--idle-duration", type=float, default=600.0,
                        help="seconds of the idle (20 msg/s) scenario (default 600)")
    parser.add_argument("--only", choices=["2000", "20x100", "idle"],
                        help="one paced scenario only")
    parser.add_argument("--flush-interval", type=float, default=5.0,
                        help="the paced stream's flush interval (default 5 s, the product's)")
    args = parser.parse_args(argv)
    if args.dagster:
        rows = [run_dagster_dev(args.duration)]
    elif args.paced:
        rows = run_paced_all(args.duration, args.idle_duration, args.only, args.flush_interval)
    else:
        rows = run()
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
