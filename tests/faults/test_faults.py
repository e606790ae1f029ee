"""The whole system under faults: kill -9, a full disk, garbage from the exchange,
two writers at once. Each must leave the store readable and converge to the truth.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from aiohttp import web
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_MS, DatasetKey, DccdError, StoreError, to_ns
from dccd_core.operations.backfill import backfill
from dccd_core.sources.registry import build_source
from dccd_core.storage import Store
from tests.fakes.binance import FakeBinance
from tests.fakes.kit import open_limiter
from tests.fakes.server import FaultInjector, serve, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
LISTING_MS = to_ns("2024-01-01") // NS_PER_MS
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
START, END = to_ns("2024-02-01"), to_ns("2024-02-01T08:00:00Z")


def _fake(**kwargs: Any) -> FakeBinance:
    kwargs.setdefault("weight_limit", 10**9)
    return FakeBinance.default(listing_ms=LISTING_MS, **kwargs)


async def _run_backfill(origin: str, store: Store, key: DatasetKey, **kwargs: Any) -> Any:
    async with open_limiter(build_source("binance", rest_url=origin)) as source:
        return await backfill(key, start=START, end=END, store=store, source=source, **kwargs)


def _assert_every_file_reads(root: Path) -> None:
    files = list(root.rglob("*.parquet"))
    for file in files:
        pl.read_parquet(file)
    assert not [p for p in root.rglob("*") if ".tmp" in p.name and p.suffix == ".parquet"]


# -- kill -9 mid-backfill ------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from dccd_core.domain import DatasetKey
    from dccd_core.operations.backfill import backfill
    from dccd_core.sources.registry import build_source
    from dccd_core.storage import Store

    async def main():
        source = build_source("binance")  # origin from DCCD_BINANCE_REST_URL
        store = Store(sys.argv[1], commit_rows=5_000)
        await backfill(DatasetKey.of("binance", "BTC/USDT", "trades"),
                       start=int(sys.argv[2]), end=int(sys.argv[3]), store=store, source=source)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("trial", range(3))
def test_backfill_killed_with_sigkill_then_rerun_converges(tmp_path: Path, trial: int) -> None:
    fake = _fake(faults=FaultInjector(latency_s=0.004))
    root = tmp_path / "lake"
    with serve_in_thread(fake.app) as origin:
        env = {**os.environ, "DCCD_BINANCE_REST_URL": origin, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(root), str(START), str(END)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not list(root.rglob("*.parquet")) and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.02)
        time.sleep(random.Random(trial).uniform(0.0, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.returncode == -signal.SIGKILL, "the child finished before the kill"

        _assert_every_file_reads(root)
        store = Store(root)
        partial = store.read(TRADES)
        assert partial["trade_id"].is_unique().all()
        truth = fake.truth_trades(START, END)
        assert 0 < partial.height < truth.height

        asyncio.run(_run_backfill(origin, store, TRADES))
    assert_frame_equal(store.read(TRADES, START, END), truth)
    assert store.holes(TRADES, START, END) == []


# -- two overlapping backfills at once ---------------------------------------------


async def test_two_overlapping_backfills_at_once_lose_nothing(tmp_path: Path) -> None:
    fake = _fake()
    store = Store(tmp_path, commit_rows=20_000)
    async with serve(fake.app()) as origin:
        await asyncio.gather(
            _run_backfill(origin, store, TRADES),
            _run_backfill(origin, Store(tmp_path, commit_rows=7_000), TRADES),
        )
    assert_frame_equal(store.read(TRADES), fake.truth_trades(START, END))


def test_two_processes_backfilling_the_same_dataset_lose_nothing(tmp_path: Path) -> None:
    fake = _fake()
    root = tmp_path / "lake"
    with serve_in_thread(fake.app) as origin:
        env = {**os.environ, "DCCD_BINANCE_REST_URL": origin, "PYTHONPATH": str(ROOT)}
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(root), str(START), str(END)],
                env=env,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for child in children:
            _, err = child.communicate(timeout=240)
            assert child.returncode == 0, err.decode()
    assert_frame_equal(Store(root).read(TRADES), fake.truth_trades(START, END))


# -- the disk fills up -------------------------------------------------------------


async def test_disk_full_keeps_committed_files_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    real_write = pq.write_table
    calls = {"n": 0}

    def write_until_full(table: Any, where: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            # Half a file reaches the disk, then the device is full.
            Path(where).write_bytes(b"PAR1" + b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
        real_write(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_until_full)
    fake = _fake()
    store = Store(tmp_path, commit_rows=5_000)
    async with serve(fake.app()) as origin:
        with pytest.raises(StoreError) as raised:
            await _run_backfill(origin, store, TRADES)
    message = str(raised.value)
    assert "No space left on device" in message or "disk" in message.lower()
    assert "\n" not in message.strip()

    monkeypatch.setattr(pq, "write_table", real_write)
    _assert_every_file_reads(tmp_path)
    committed = store.read(TRADES)
    truth = fake.truth_trades(START, END)
    assert committed.height > 0
    assert_frame_equal(committed, truth.join(committed.select("trade_id"), on="trade_id"))

    async with serve(fake.app()) as origin:  # space is back: a re-run converges
        await _run_backfill(origin, store, TRADES)
    assert_frame_equal(store.read(TRADES), truth)


# -- the exchange sends garbage ------------------------------------------------------

Corrupt = Callable[[Any], Any]


def _garbage_middleware(path_suffix: str, after: int, corrupt: Corrupt | None, html: bool) -> Any:
    """From the ``after``-th data request on, every reply of that endpoint is garbage."""
    seen = {"n": 0}

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if not request.path.endswith(path_suffix):
            return response
        seen["n"] += 1
        if seen["n"] <= after:
            return response
        if html:
            return web.Response(
                text="<html><body>Access denied</body></html>", status=200, content_type="text/html"
            )
        assert isinstance(response, web.Response) and response.body is not None
        body = orjson.loads(bytes(response.body))  # type: ignore[arg-type]
        return web.Response(
            body=orjson.dumps(corrupt(body)), status=200, content_type="application/json"
        )

    return middleware


def _seconds_not_ms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "T": r["T"] // 1000} for r in rows]


def _nan_price(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "p": "NaN"} for r in rows]


def _wrong_shape(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": rows}


def _kline_seconds(rows: list[list[Any]]) -> list[list[Any]]:
    return [[r[0] // 1000, *r[1:]] for r in rows]


@pytest.mark.parametrize(
    ("key", "endpoint", "corrupt", "html"),
    [
        (TRADES, "/aggTrades", None, True),
        (TRADES, "/aggTrades", _wrong_shape, False),
        (TRADES, "/aggTrades", _seconds_not_ms, False),
        (TRADES, "/aggTrades", _nan_price, False),
        (CANDLES, "/klines", _kline_seconds, False),
    ],
    ids=["html", "wrong-shape", "seconds-not-ms", "nan-price", "kline-seconds"],
)
async def test_garbage_pages_are_rejected_and_never_stored(
    tmp_path: Path, key: DatasetKey, endpoint: str, corrupt: Corrupt | None, html: bool
) -> None:
    fake = _fake()
    app = fake.app()
    after = 2 if key.data_type.value == "trades" else 0  # 8 h of 1m candles is one page
    app.middlewares.insert(0, _garbage_middleware(endpoint, after, corrupt, html))
    store = Store(tmp_path, commit_rows=1_000)
    async with serve(app) as origin:
        with pytest.raises(DccdError) as raised:
            await _run_backfill(origin, store, key, concurrency=1)
    assert "\n" not in str(raised.value).strip() and str(raised.value)
    stored = store.read(key)
    if key.data_type.value == "trades":
        truth = fake.truth_trades(START, END)
        assert_frame_equal(stored, truth.join(stored.select("trade_id"), on="trade_id"))
    else:
        truth = fake.truth_candles(START, END)
        assert_frame_equal(stored, truth.join(stored.select("ts"), on="ts"))
    assert stored.filter(pl.col("ts") < START).height == 0
