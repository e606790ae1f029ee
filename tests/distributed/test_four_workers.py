"""Acceptance of the shared request budget (#14): four worker PROCESSES backfill four
datasets of one exchange at once, from one egress, against a fake Binance that enforces
its weight limit per window (429 + Retry-After past it, 418 for who keeps sending): no
429/418, the weight spent in every window of the exchange within its limit, every
stored row equal to the truth.

The fake's window is two seconds of ``WEIGHT`` (not Binance's minute of 6000) so the test
takes seconds; each worker alone would spend 0.9 of it, four without sharing 3.6 times.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dccd_core.domain import NS_PER_MS, DatasetKey, to_ns
from dccd_core.storage import Store
from tests.fakes.binance import FakeBinance
from tests.fakes.server import serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
WEIGHT = 120  # per WINDOW_S, the fake's limit and the limiters' budget
WINDOW_S = 2.0
HEADER = "X-MBX-USED-WEIGHT-1M"
#: (symbol, span, start, end): about 23 pages of 1000 bars each
DATASETS = [
    ("BTC/USDT", "1m", "2024-02-01", "2024-02-17"),
    ("ETH/USDT", "1m", "2024-02-01", "2024-02-17"),
    ("BTC/USDT", "5m", "2024-01-01", "2024-03-21"),
    ("ETH/USDT", "5m", "2024-01-01", "2024-03-21"),
]


def _window_meter(fake: FakeBinance, used: dict[int, int]) -> web.Application:
    """The fake's app, noting the weight it reports used in each of its windows."""

    @web.middleware
    async def meter(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        raw = response.headers.get(HEADER)
        if raw is not None:
            window = int(time.time() // WINDOW_S)
            used[window] = max(used.get(window, 0), int(raw))
        return response

    app = fake.app()
    app.middlewares.insert(0, meter)
    return app


async def test_four_workers_share_one_budget(postgres_url: str, tmp_path: Path) -> None:
    fake = FakeBinance.default(
        listing_ms=to_ns("2023-06-01") // NS_PER_MS, weight_limit=WEIGHT, window_s=WINDOW_S
    )
    used: dict[int, int] = {}
    lake = tmp_path / "lake"
    async with serve(_window_meter(fake, used)) as origin:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DCCD_BINANCE_REST_URL": origin,
            "DCCD_RATE_BUDGET_URL": postgres_url,
            "DCCD_EGRESS": "test-nat",
        }
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.distributed.budget_worker",
                symbol, span, start, end, str(lake), str(WEIGHT), str(WINDOW_S),
                cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            for symbol, span, start, end in DATASETS
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                line = await asyncio.wait_for(worker.stdout.readline(), 60)
                assert line.strip() == b"ready", line
            began = time.time()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            outputs = await asyncio.wait_for(
                asyncio.gather(*(worker.communicate() for worker in workers)), 120
            )
            ended = time.time()
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
    reports = []
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-2000:]
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))

    # no 429 or 418, and no window of the exchange over its limit
    assert fake.statuses[429] == 0 and fake.statuses[418] == 0, fake.statuses
    assert all(report["rate_limit_pauses"] == 0 for report in reports)
    assert max(used.values()) <= WEIGHT
    # one bucket for the four, every request through it, and the pacing really bound:
    # the run took about as long as its weight at the budget's rate
    assert {report["bucket"] for report in reports} == {"binance@test-nat"}
    spent = sum(2 * report["requests"] for report in reports)
    assert sum(report["takes"] for report in reports) >= sum(r["requests"] for r in reports)
    rate = spent / (ended - began)
    assert rate <= WEIGHT / WINDOW_S
    windows = collections.Counter(used)
    assert len(windows) >= 2

    store = Store(lake)
    for symbol, span, start, end in DATASETS:
        key = DatasetKey.of("binance", symbol, "ohlc", span)
        truth = fake.truth_candles(to_ns(start), to_ns(end), span, symbol.replace("/", ""))
        stored = store.read(key)
        assert stored.equals(truth.select(stored.columns)), key
