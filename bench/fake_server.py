"""The fake Binance as a process of its own, shared by dccd v4 and dccd 3.8.1 runs.

Why a process: the benchmarked client (v4 or v3) must not share its core, its event
loop or its memory figure with the exchange, and both versions must hit the very same
server (same data, same latency, same counters).

    .venv/bin/python -m bench.fake_server [--latency-ms 50] [--listing 2023-12-31]

prints ``ORIGIN http://127.0.0.1:PORT`` on stdout once it listens, then serves until
its stdin closes (the parent exits or closes the pipe) or it is terminated.

Besides Binance's own paths (``tests.fakes.binance.FakeBinance``: klines, aggTrades,
depth, exchangeInfo, with its quirks), it answers ``GET /__stats`` with its counters
``{"requests": {"klines": n, ...}, "statuses": {"200": n, ...}, "data_requests": n}``;
a runner reads them before and after a scenario and reports the difference, so the
request count is the server's, not what the client believes it sent. The fake has no
weight limit here (the v4 and v3 limiters are opened too): the benchmark measures the
clients, not Binance's budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
from aiohttp import web

from dccd_core.domain import to_ns
from tests.fakes.binance import FakeBinance
from tests.fakes.server import FaultInjector, serve

__all__ = ["LISTING", "build_app", "main", "serving_process"]

LISTING = "2023-12-31"
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serving_process(module_args: list[str], ready: str) -> Iterator[list[str]]:
    """A fake server run as ``python -m <module_args>``: waits for its first stdout line,
    which must start with ``ready`` (its origins follow), yields that line's other
    words, and stops it by closing its stdin (terminated if it does not exit)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", *module_args],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(f"{ready} "):
            raise RuntimeError(f"{module_args[0]} did not start: {line!r}")
        yield line.split()[1:]
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server stops at EOF
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(10)


def build_app(
    latency_s: float = 0.0, listing: str = LISTING
) -> tuple[FakeBinance, web.Application]:
    """The fake (its truth and counters) and its app, with ``/__stats`` added."""
    faults = FaultInjector(latency_s=latency_s) if latency_s else None
    fake = FakeBinance.default(
        listing_ms=to_ns(listing) // 1_000_000, weight_limit=10**12, faults=faults
    )
    app = fake.app()

    async def stats(request: web.Request) -> web.Response:
        body = {
            "requests": dict(fake.requests),
            "statuses": {str(k): v for k, v in fake.statuses.items()},
            "data_requests": fake.data_requests,
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    app.router.add_get("/__stats", stats)
    return fake, app


async def _serve_until_stdin_closes(latency_s: float, listing: str) -> None:
    _, app = build_app(latency_s, listing)
    async with serve(app) as origin:
        print(f"ORIGIN {origin}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # returns at EOF


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every reply")
    parser.add_argument("--listing", default=LISTING, help="listing date of the markets")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_stdin_closes(args.latency_ms / 1000, args.listing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
