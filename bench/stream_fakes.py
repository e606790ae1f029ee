"""The exchanges ``bench_stream`` streams from, each run in a process of its own.

A fake Binance combined stream sending ``n`` aggTrades as fast as asked (the bursts),
one sending each due trade as its own frame every 10 ms (the paced scenarios), and the
tests' ``BinanceStreamFake`` for the ``dagster dev`` run. Their own module: the sender
side of the benchmark, apart from the consumer it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import orjson

from dccd_core.domain import NS_PER_MS

__all__ = ["FIRST_ID", "TICK_S", "paced_server_main", "server_main", "stream_fake_main"]

FIRST_ID = 1_000_000_000
_BATCH = 200  # frames stamped with one clock reading (ms resolution anyway)
#: the paced senders wake this often and send every trade that became due
TICK_S = 0.01


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


def _serve_binance_stream(handler: Any, port_box: Any) -> None:
    """Serve ``handler`` as Binance's ``/stream`` (and an empty ``aggTrades``: the stream
    heals from connect time to its first frame, nothing traded before) on a free port,
    put the port in ``port_box``, and run until the parent process is gone."""
    from aiohttp import web

    async def agg_trades(request: web.Request) -> web.Response:
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


def server_main(n: int, rate: float, port_box: Any) -> None:
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

    _serve_binance_stream(handler, port_box)


def paced_server_main(rate_per_symbol: float, tick_s: float, port_box: Any) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        names = request.query.get("streams", "").split("/")
        natives = [name.split("@")[0].upper() for name in names if name.endswith("@aggTrade")]
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sender = asyncio.create_task(_send_paced(ws, natives, rate_per_symbol, tick_s))
        try:
            async for _msg in ws:  # reading answers the client's pings (else: a drop at 40 s)
                pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return ws

    async def _send_paced(
        ws: web.WebSocketResponse, natives: list[str], rate_per_symbol: float, tick_s: float
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        while not ws.closed:
            due = int((loop.time() - started) * rate_per_symbol)
            now_ms = time.time_ns() // NS_PER_MS
            for i in range(sent, due):  # round-robin: symbols interleave as on a real feed
                for native in natives:
                    data = {
                        "e": "aggTrade", "E": now_ms, "s": native, "a": FIRST_ID + i,
                        "p": f"{42000 + (i * 37) % 500 / 100:.2f}",
                        "q": f"{0.001 + (i % 13) / 1000:.5f}",
                        "f": 3_000_000_000 + i, "l": 3_000_000_000 + i, "T": now_ms,
                        "m": i % 3 == 0, "M": True,
                    }
                    stream = f"{native.lower()}@aggTrade"
                    await ws.send_bytes(orjson.dumps({"stream": stream, "data": data}))
            sent = max(sent, due)
            await asyncio.sleep(tick_s)

    _serve_binance_stream(handler, port_box)


def stream_fake_main(per_ms: int, tick_s: float, t0_ms: int, port_box: Any) -> None:
    from tests.fakes.binance_ws import BinanceStreamFake
    from tests.fakes.server import serve

    async def main() -> None:
        fake = BinanceStreamFake(per_ms=per_ms, trade_tick_s=tick_s, t0_ms=t0_ms)
        async with serve(fake.app()) as origin:
            port_box.put(origin)
            while os.getppid() == parent:
                await asyncio.sleep(0.5)

    parent = os.getppid()
    asyncio.run(main())
