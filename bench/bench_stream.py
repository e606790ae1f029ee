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

import orjson
import polars as pl
import psutil

from dccd_core.domain import NS_PER_MS, DatasetKey
from dccd_core.operations.stream import FlushReport, stream
from dccd_core.sources.registry import build_source
from dccd_core.storage import Store
from dccd_core.transport.ws import WsConfig

__all__ = ["run"]

KEY = DatasetKey.of("binance", "BTC/USDT", "trades")
FIRST_ID = 1_000_000_000
_BATCH = 200  # frames stamped with one clock reading (ms resolution anyway)


# -- the exchange (its own process) ---------------------------------------------------


def _frames(first: int, count: int, now_ms: int) -> list[bytes]:
    out = []
    for i in range(first, first + count):
        data = {
            "e": "aggTrade",
            "E": now_ms,
            "s": "BTCUSDT",
            "a": FIRST_ID + i,
            "p": f"{42000 + (i * 37) % 500 / 100:.2f}",
            "q": f"{0.001 + (i % 13) / 1000:.5f}",
            "f": 3_000_000_000 + i,
            "l": 3_000_000_000 + i,
            "T": now_ms,
            "m": i % 3 == 0,
            "M": True,
        }
        out.append(orjson.dumps({"stream": "btcusdt@aggTrade", "data": data}))
    return out


def _server_main(n: int, rate: float, port_box: Any) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        while sent < n and not ws.closed:
            if rate:
                ahead = started + sent / rate - loop.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            count = min(_BATCH, n - sent)
            for frame in _frames(sent, count, time.time_ns() // NS_PER_MS):
                await ws.send_bytes(frame)
            sent += count
        async for _msg in ws:  # stay open until the consumer leaves
            pass
        return ws

    async def agg_trades(request: web.Request) -> web.Response:
        # The stream heals from connect time to its first frame: nothing traded before.
        return web.json_response([])

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stream", handler)
        app.router.add_get("/api/v3/aggTrades", agg_trades)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_box.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        while os.getppid() == parent:  # never outlive the benchmark
            await asyncio.sleep(0.5)

    parent = os.getppid()
    asyncio.run(main())


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
    source = build_source("binance", rest_url=origin, ws_url=origin.replace("http", "ws"))
    stop = asyncio.Event()
    reports: list[FlushReport] = []

    def on_flush(report: FlushReport) -> None:
        reports.append(report)
        if report.total_rows >= n:
            stop.set()

    started = time.perf_counter()
    try:
        final = await stream(
            "binance", ["BTC/USDT"], "trades", store=clock, source=source,
            flush_interval_s=flush_interval_s, stop=stop, on_flush=on_flush,
            max_runtime_s=300.0, ws_config=WsConfig(idle_timeout_s=30.0),
        )
    finally:
        await source.http.aclose()  # type: ignore[attr-defined]
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
    server = ctx.Process(target=_server_main, args=(n, rate, port_box), daemon=True)
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


if __name__ == "__main__":
    for result in run():
        print(result)
