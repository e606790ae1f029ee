"""``ensure``: a window read complete, fetching only its holes, once, against the fake Binance."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, to_ns
from dccd_core.operations.backfill import backfill_sync
from dccd_core.operations.ensure import FetchTooLarge, ensure, ensure_async, estimate_requests
from dccd_core.storage import Store
from tests.fakes.binance import FakeBinance
from tests.fakes.kit import source_on
from tests.fakes.server import serve_in_thread

LISTING_MS = to_ns("2024-01-01") // NS_PER_MS
KEY = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")


def _fake() -> FakeBinance:
    return FakeBinance.default(listing_ms=LISTING_MS, weight_limit=10**9)


@pytest.fixture
def origin(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = _fake()
    with serve_in_thread(fake.app) as url:
        monkeypatch.setenv("DCCD_BINANCE_REST_URL", url)
        yield fake


def _two_holes(store: Store) -> None:
    """Stored: Feb 2 and Feb 4; the window Feb 1..Feb 5 misses Feb 1 and Feb 3."""
    backfill_sync(KEY, start="2024-02-02", end="2024-02-03", store=store)
    backfill_sync(KEY, start="2024-02-04", end="2024-02-05", store=store)


def test_ensure_fetches_only_the_two_holes_and_returns_the_truth(
    origin: FakeBinance, tmp_path: Path
) -> None:
    store = Store(tmp_path)
    _two_holes(store)
    before = origin.requests["klines"]
    assert before == 4  # 1440 bars a day, 1000 per page: 2 pages a day

    frame = ensure(
        "binance", "BTC/USDT", "ohlc", "1m", start="2024-02-01", end="2024-02-05", store=store
    )

    truth = origin.truth_candles(to_ns("2024-02-01"), to_ns("2024-02-05"))
    assert frame.equals(truth.select(frame.columns))
    assert origin.requests["klines"] - before == 4  # Feb 1 and Feb 3 only
    assert store.holes(KEY, "2024-02-01", "2024-02-05") == []
    # complete now: a second call sends no request at all, metadata included
    seen = sum(origin.requests.values())
    again = ensure(
        "binance", "BTC/USDT", "ohlc", "1m", start="2024-02-01", end="2024-02-05", store=store
    )
    assert again.equals(frame)
    assert sum(origin.requests.values()) == seen


async def test_ensure_async_twin_trades(tmp_path: Path) -> None:
    fake = _fake()
    store = Store(tmp_path)
    start, end = to_ns("2024-02-01"), to_ns("2024-02-01T06:00:00")
    async with source_on("binance", fake.app()) as source:
        from dccd_core.operations.backfill import backfill

        await backfill(
            TRADES,
            start="2024-02-01T04:00:00",
            end="2024-02-01T05:00:00",
            store=store,
            source=source,
        )
        fetched = fake.requests["aggTrades"]
        frame = await ensure_async(
            "binance", "BTC/USDT", "trades", start=start, end=end, store=store, source=source
        )
    truth = fake.truth_trades(start, end)
    assert frame["trade_id"].to_list() == truth["trade_id"].to_list()
    assert frame["price"].to_list() == truth["price"].to_list()
    # only the two missing stretches (00-04h, 05-06h; 02-04h is quiet) were paged:
    # 36 + 36 pages of 1000 and a few to locate each start, not the 108 of the window
    missing = fake.truth_trades(start, to_ns("2024-02-01T04:00:00")).height + (
        fake.truth_trades(to_ns("2024-02-01T05:00:00"), end).height
    )
    assert missing == 72_000 and truth.height == 108_000
    assert 72 <= fake.requests["aggTrades"] - fetched <= 72 + 2 * 8


def test_two_concurrent_ensures_fetch_once(origin: FakeBinance, tmp_path: Path) -> None:
    store = Store(tmp_path)
    results: dict[tuple[str, str], Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def call(start: str, end: str) -> None:
        try:
            barrier.wait()
            results[(start, end)] = ensure(
                "binance", "BTC/USDT", "ohlc", "1m", start=start, end=end, root=tmp_path
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=call, args=("2024-02-01", "2024-02-03")),
        threading.Thread(target=call, args=("2024-02-02", "2024-02-04")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # each window is 2 days (2880 bars: 3 pages of 1000). The first caller fetches its
    # window (3 pages); the second finds the overlap covered and fetches its other day
    # (2 pages): 5. Unlocked, both would fetch their whole window: 6, Feb 2 twice.
    assert origin.requests["klines"] == 5
    truth = origin.truth_candles(to_ns("2024-02-01"), to_ns("2024-02-04"))
    assert store.read(KEY).equals(truth.select(store.read(KEY).columns))
    for (a, b), frame in results.items():
        assert frame.equals(origin.truth_candles(to_ns(a), to_ns(b)).select(frame.columns))
    assert len(results) == 2


def test_max_fetch_refuses_with_the_estimate(origin: FakeBinance, tmp_path: Path) -> None:
    store = Store(tmp_path)
    _two_holes(store)
    seen = origin.requests["klines"]

    def ensure_four_days(max_fetch: int) -> object:
        return ensure(
            "binance", "BTC/USDT", "ohlc", "1m", start="2024-02-01", end="2024-02-05",
            store=store, max_fetch=max_fetch,
        )  # fmt: skip

    with pytest.raises(FetchTooLarge) as refused:
        ensure_four_days(3)
    message = str(refused.value)
    assert "needs about 4 requests" in message and "max_fetch=3" in message, message
    assert "2 missing range(s)" in message, message
    assert origin.requests["klines"] == seen  # refused before any data request
    # exactly the budget: fetched
    ensure_four_days(4)
    assert origin.requests["klines"] == seen + 4


def test_trade_estimate_is_rough_and_says_so(tmp_path: Path) -> None:
    estimate = estimate_requests(
        TRADES, [(to_ns("2024-02-01"), to_ns("2024-02-02"))], store=Store(tmp_path)
    )
    assert estimate.rough and "rough" in estimate.note
    assert estimate.requests == 87  # 86 400 s at the default 1 trade/s, 1000 per page


_ENSURE_PROGRAM = """
import sys
from dccd_core import ensure
frame = ensure("binance", "BTC/USDT", "ohlc", "1m", start=sys.argv[1], end=sys.argv[2],
               root=sys.argv[3])
print(frame.height)
"""


@pytest.mark.slow
def test_two_processes_ensure_the_same_window_once(origin: FakeBinance, tmp_path: Path) -> None:
    """The ensure lock is a file lock: two processes fetch the window once, not twice."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    argv = [sys.executable, "-c", _ENSURE_PROGRAM, "2024-02-01", "2024-02-03", str(tmp_path)]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    truth = origin.truth_candles(to_ns("2024-02-01"), to_ns("2024-02-03"))
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == str(truth.height)
    assert origin.requests["klines"] == 3  # 2880 bars, 1000 a page: once
