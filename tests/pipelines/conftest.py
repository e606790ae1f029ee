"""Fixtures of the Dagster tests: a fake Binance on loopback and a catalog pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dccd_core.domain import DatasetKey, DataType, ms_to_ns, to_ns
from dccd_pipelines import execution
from dccd_pipelines.catalog import Catalog, parse_catalog
from tests.fakes.binance import FakeBinance
from tests.fakes.server import serve_in_thread

LISTING_MS = to_ns("2023-12-01") // 1_000_000
TODAY = date(2024, 6, 1)


async def _stub_backfill(
    key: DatasetKey,
    *,
    start: Any,
    end: Any = None,
    store: Any = None,
    source: Any = None,
    progress: Any = None,
    concurrency: int = 6,
) -> Any:
    """Stand-in for ``operations.backfill`` (candles only) until the real one lands."""
    from dccd_core.sources.registry import build_source

    assert key.data_type is DataType.OHLC and key.span is not None
    src = source or build_source(key.exchange)
    start_ts, end_ts = to_ns(start), to_ns(end)
    step = 1000 * key.span.ns
    windows = -(-(end_ts - start_ts) // step)
    rows = requests = 0
    try:
        with store.writer(key, provenance={"source": key.exchange}) as writer:
            t = start_ts
            while t < end_ts:
                e = min(t + step, end_ts)
                frame = await src.fetch_candles(key.symbol, key.span, t, e)
                writer.add(frame)
                rows += frame.height
                requests += 1
                t = e
                if progress is not None:
                    progress(SimpleNamespace(windows_done=requests, windows_total=windows,
                                             covered_until_ts=t, rows_per_s=1.0, eta_s=0.0,
                                             retries=0, rate_limit_pauses=0))
        result = writer.result
    finally:
        if source is None:
            await src.http.aclose()
    store.record_coverage(key, start_ts, end_ts)
    return SimpleNamespace(rows_fetched=rows, rows_new=result.new_rows, requests=requests,
                           retries=0, rate_limit_pauses=0, start_ts=start_ts, end_ts=end_ts,
                           files=result.files)


def _real_backfill_available() -> bool:
    try:
        import dccd_core.operations.backfill  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def _backfill(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _real_backfill_available():
        monkeypatch.setattr(execution, "load_backfill", lambda: _stub_backfill)


@pytest.fixture(scope="session")
def fake_binance() -> FakeBinance:
    return FakeBinance.default(listing_ms=LISTING_MS)


@pytest.fixture(scope="session")
def binance_origin(fake_binance: FakeBinance) -> Iterator[str]:
    with serve_in_thread(fake_binance.app) as origin:
        yield origin


def make_catalog(root: Path, origin: str, **dataset: Any) -> Catalog:
    ds = {
        "exchange": "binance",
        "symbols": ["BTC/USDT"],
        "data_types": ["ohlc"],
        "spans": ["1m"],
        "start": "2024-01-01",
        "update": "*/15 * * * *",
        **dataset,
    }
    raw = {"store": {"root": str(root)}, "exchanges": {"binance": {"rest_url": origin}},
           "datasets": [ds]}
    return parse_catalog(raw, path=root / "catalog.yaml", env={}, today=TODAY)


__all__ = ["LISTING_MS", "TODAY", "make_catalog", "ms_to_ns"]
