"""Stream hot path: frames -> parse (Binance aggTrade) -> buffer -> flush into the store.

Loopback-free variant of the stream: measures what the consumer side can absorb
(zero loss asserted). Exchange-ts-to-durable latency (p50/p99) is not measured yet.
``python -m bench.bench_stream`` prints one row per scenario.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import orjson
import polars as pl
import psutil

from dccd_core.domain import DatasetKey, DataType, Symbol
from dccd_core.sources.binance import BinanceSource
from dccd_core.sources.ws import WsSubscription
from dccd_core.storage import Store

__all__ = ["run"]


def _frames(n: int, t0_ms: int) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "stream": "btcusdt@aggTrade",
                "data": {
                    "e": "aggTrade",
                    "E": t0_ms + i // 50,
                    "s": "BTCUSDT",
                    "a": 1_000_000 + i,
                    "p": f"{42000 + i % 500 / 100:.8f}",
                    "q": "0.00100000",
                    "f": i,
                    "l": i,
                    "T": t0_ms + i // 50,
                    "m": i % 2 == 0,
                    "M": True,
                },
            }
        )
        for i in range(n)
    ]


def run(n: int = 500_000, batch: int = 10_000, flush_every: int = 100_000) -> list[dict[str, Any]]:
    source = BinanceSource(http=None)
    source.ws_url(WsSubscription(DataType.TRADES, (Symbol.parse("BTC/USDT"),)))
    key = DatasetKey.of("binance", "BTC/USDT", "trades")
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        frames = _frames(n, int(time.time() * 1000))
        started = time.perf_counter()
        buf = []
        rows = 0
        for i in range(0, n, batch):
            for ev in source.parse_ws_messages(frames[i : i + batch]):
                buf.append(ev.rows)  # type: ignore[union-attr]
            if (i + batch) % flush_every == 0 or i + batch >= n:
                df = pl.concat(buf).unique("trade_id", keep="last").sort("ts")
                buf = []
                store.write(key, df)
                rows += df.height
        wall = time.perf_counter() - started
        assert store.read(key).height == n, "rows lost"
    return [
        {
            "scenario": f"binance aggTrade parse+flush {n} msgs",
            "wall_s": round(wall, 3),
            "rows_per_s": round(rows / wall),
            "msgs_per_s": round(n / wall),
            "requests": 0,
            "peak_rss_mb": round(psutil.Process().memory_info().rss / 2**20),
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
