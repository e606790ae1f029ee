"""One worker process of the shared-budget test (``test_four_workers.py``): backfills
one Binance dataset from the fake named by ``DCCD_BINANCE_REST_URL``, pacing through the
shared budget at ``DCCD_RATE_BUDGET_URL``, as a worker of a deployment would.

Protocol on stdio: prints ``ready`` once imported and built, waits for a line on stdin
(so the workers start together), backfills, prints its counters as one JSON line.

    python -m tests.distributed.budget_worker SYMBOL SPAN START END ROOT WEIGHT WINDOW_S
"""

from __future__ import annotations

import asyncio
import json
import sys

from dccd_core.domain import DatasetKey
from dccd_core.operations.backfill import backfill
from dccd_core.sources.registry import build_source
from dccd_core.storage import Store
from dccd_core.transport.shared_limiter import SharedWeightLimiter


async def main(argv: list[str]) -> None:
    symbol, span, start, end, root, weight, window_s = argv
    source = build_source("binance")  # REST URL and budget URL from the environment
    built = source.http.limiter  # type: ignore[attr-defined]
    assert isinstance(built, SharedWeightLimiter), "DCCD_RATE_BUDGET_URL did not take"
    # the same bucket, scaled to the fake's window (seconds, not Binance's minute)
    source.http.limiter = SharedWeightLimiter(  # type: ignore[attr-defined]
        built.url, built.bucket, int(weight), usage_header=built.usage_header,
        window_s=float(window_s),
    )
    key = DatasetKey.of("binance", symbol, "ohlc", span)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    async with source:
        result = await backfill(key, start=start, end=end, store=Store(root), source=source)
        limiter = source.http.limiter  # type: ignore[attr-defined]
        print(
            json.dumps(
                {
                    "rows_new": result.rows_new,
                    "requests": result.requests,
                    "rate_limit_pauses": result.rate_limit_pauses,
                    "takes": limiter.takes,
                    "bucket": limiter.bucket,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
