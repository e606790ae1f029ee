"""Child-process bodies for the crash and concurrency tests (run via multiprocessing).

Kept import-light and at module level so a forkserver can preload the store once and
start each child in milliseconds.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl

from dccd_core.domain import DatasetKey
from dccd_core.storage import SegmentPolicy, Store

__all__ = [
    "CRASH_KEY",
    "SEGMENTS",
    "batch_rows",
    "crash_writer",
    "flush_rows",
    "merge_writer",
    "segment_writer",
]

CRASH_KEY = DatasetKey.of("binance", "BTC/USDT", "trades")
_BASE = 1_709_164_800_000_000_000  # 2024-02-29T00:00:00Z
_DAY = 86_400 * 10**9
_ROWS = 4_000


def batch_rows(trial: int, index: int) -> pl.DataFrame:
    """Deterministic trades of one batch: spans three daily files and repeats half of
    the previous batch's ids (so every write is a real merge of overlapping rows)."""
    j = np.arange(_ROWS)
    ids = [f"{trial}-{index}-{k}" for k in j[: _ROWS // 2]]
    if index:
        ids += [f"{trial}-{index - 1}-{k}" for k in j[_ROWS // 2 :]]
    else:
        ids += [f"{trial}-{index}-{k}" for k in j[_ROWS // 2 :]]
    ts = _BASE - _DAY // 2 + (j * (2 * _DAY // _ROWS)) + trial * 1_000 + index
    return pl.DataFrame(
        {
            "ts": ts.astype(np.int64),
            "trade_id": ids,
            "price": np.full(_ROWS, float(index)),
            "amount": np.ones(_ROWS),
            "side": ["buy"] * _ROWS,
        }
    )


def crash_writer(root: str, trial: int, log_path: str, use_writer: bool) -> None:
    """Write batches forever; after each committed write append its index to the log."""
    store = Store(root)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    index = 0
    while True:
        rows = batch_rows(trial, index)
        if use_writer:
            with store.writer(CRASH_KEY, commit_rows=10**9) as writer:
                writer.add(rows.head(_ROWS // 2))
                writer.add(rows.tail(_ROWS // 2))
        else:
            store.write(CRASH_KEY, rows)
        store.record_coverage(CRASH_KEY, int(rows["ts"].min()), int(rows["ts"].max()) + 1)
        os.write(fd, f"{index}\n".encode())  # one syscall: a line is whole or absent
        index += 1


SEGMENTS = SegmentPolicy(
    min_base_rows=300, fanout=2, max_segments=3, close_after_s=1e12, open_segment_rows=60
)
"""Tiny bounds: a few flushes already merge segments and compact into the day file."""


def flush_rows(trial: int, index: int) -> pl.DataFrame:
    """One stream flush: 30 new trades and the previous flush's last 10 again."""
    j = np.arange(index * 30 - (10 if index else 0), index * 30 + 30)
    return pl.DataFrame(
        {
            "ts": (_BASE + 3_600 * 10**9 * trial + j * 1_000_000).astype(np.int64),
            "trade_id": [f"{trial}-{k}" for k in j],
            "price": np.ones(len(j)),
            "amount": np.ones(len(j)),
            "side": ["buy"] * len(j),
        }
    )


def segment_writer(root: str, trial: int, log_path: str) -> None:
    """Stream-like small flushes into one day (segments, merges, compactions) forever."""
    store = Store(root, segments=SEGMENTS)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    index = 0
    while True:
        store.write(CRASH_KEY, flush_rows(trial, index))
        os.write(fd, f"{index}\n".encode())
        index += 1


def merge_writer(root: str, worker: int, batches: int) -> None:
    """Write overlapping candles and trades, sharing ts with the other worker."""
    store = Store(root)
    candles = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
    minute = 60 * 10**9
    for index in range(batches):
        ts = _BASE - 10 * minute + (np.arange(200) + index * 50) * minute
        store.write(
            candles,
            pl.DataFrame(
                {
                    "ts": ts.astype(np.int64),
                    "open": 1.0,
                    "high": 1.0,
                    "low": 1.0,
                    "close": float(worker),
                    "volume": 1.0,
                    "quote_volume": None,
                    "trades": None,
                }
            ),
        )
        ids = [f"w{worker}-{index}-{k}" for k in range(300)]
        with store.writer(CRASH_KEY, commit_rows=100) as writer:
            writer.add(
                pl.DataFrame(
                    {
                        "ts": (_BASE - _DAY // 2 + np.arange(300) * 10**9 * 300).astype(np.int64),
                        "trade_id": ids,
                        "price": 1.0,
                        "amount": 1.0,
                        "side": "sell",
                    }
                )
            )
