"""Fixtures of the Dagster tests: a fake Binance on loopback and a catalog pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dccd_core.catalog import Catalog
from dccd_core.domain import ms_to_ns, to_ns
from dccd_pipelines.catalog import parse_catalog
from tests.fakes.binance import FakeBinance
from tests.fakes.server import serve_in_thread

LISTING_MS = to_ns("2023-12-01") // 1_000_000
TODAY = date(2024, 6, 1)


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
