"""Funding backfills against the fakes of Binance USD-M, Bybit, OKX and BitMEX: the store
equals the truth across many pages (newest-first pages, hourly stretches that fill a
window to the limit, Binance's late stamps), and what cannot be served is refused first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

from dccd_core.domain import (
    NS_PER_DAY,
    NS_PER_MS,
    ConfigError,
    DatasetKey,
    NoCapability,
    now_ns,
)
from dccd_core.operations.backfill import backfill
from dccd_core.storage import Store
from tests.fakes.funding import FUNDING_FAKES, FundingHistory, funding_app
from tests.fakes.kit import backfill_on, fast_source_on

EXCHANGES = ("binance", "bybit", "okx", "bitmex")
KEY = {ex: DatasetKey.of(ex, "BTC/USDT:USDT", "funding") for ex in EXCHANGES}
#: OKX serves 3 months; the others are asked for more than one page of their limit
DAYS = {"binance": 100, "bybit": 100, "okx": 80, "bitmex": 100}


def make_fake(exchange: str, days: int) -> Any:
    cls, options = FUNDING_FAKES[exchange]
    history = FundingHistory.recent(days + 2, marks_from_ms=0, **options)
    if exchange == "binance":  # the oldest rows carry markPrice ""
        history = FundingHistory.recent(
            days + 2, marks_from_ms=history.first_ms + 10 * NS_PER_DAY // NS_PER_MS, **options
        )
    return cls(history)


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_stored_funding_equals_the_truth_across_pages(tmp_path: Path, exchange: str) -> None:
    fake = make_fake(exchange, DAYS[exchange])
    store = Store(tmp_path)
    end = now_ns() - NS_PER_DAY
    start = end - DAYS[exchange] * NS_PER_DAY
    result = await backfill_on(exchange, funding_app(exchange, fake), KEY[exchange], store,
                               start=start, end=end)  # fmt: skip
    truth = fake.history.truth(start, end, marks=fake.marks, intervals=fake.intervals)
    stored = store.read(KEY[exchange], start, end)
    assert truth.height > 400  # 8-hourly and ten days hourly
    assert_frame_equal(stored, truth, check_dtypes=False)
    assert result.rows_new == truth.height
    assert len(fake.requests) >= 3  # more than one page: the seams were crossed
    assert store.coverage(KEY[exchange]).holes(start, end) == []
    # a second run fetches nothing new and stores nothing twice
    again = await backfill_on(exchange, funding_app(exchange, fake), KEY[exchange], store,
                              start=start, end=end)  # fmt: skip
    assert again.rows_new == 0
    assert_frame_equal(store.read(KEY[exchange], start, end), stored)


async def test_okx_older_than_three_months_is_refused_before_any_request(tmp_path: Path) -> None:
    fake = make_fake("okx", 10)
    async with fast_source_on("okx", funding_app("okx", fake)) as source:
        with pytest.raises(NoCapability, match="last 90 days"):
            await backfill(KEY["okx"], start=now_ns() - 120 * NS_PER_DAY, store=Store(tmp_path),
                           source=source)  # fmt: skip
    assert fake.requests == []


def test_a_spot_symbol_is_refused_before_any_request() -> None:
    with pytest.raises(ConfigError, match=r"perpetual symbol like BTC/USDT:USDT"):
        DatasetKey.of("bybit", "BTC/USDT", "funding")


async def test_start_origin_finds_the_first_funding(tmp_path: Path) -> None:
    fake = make_fake("bitmex", 30)
    store = Store(tmp_path)
    app = funding_app("bitmex", fake)
    result = await backfill_on("bitmex", app, KEY["bitmex"], store, start="origin")
    assert result.start_ts == fake.history.events[0][0] * NS_PER_MS
    assert store.read(KEY["bitmex"]).height == len(fake.history.events)
