"""Open interest against the fakes of Binance USD-M and Bybit: parsers on documented rows,
the store equal to the truth across pages, Binance's 30 days refused before a request."""

from __future__ import annotations

from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from dccd_core.domain import (
    NS_PER_DAY,
    NS_PER_MS,
    ConfigError,
    DatasetKey,
    DataType,
    NoCapability,
    now_ns,
)
from dccd_core.operations.backfill import backfill
from dccd_core.sources import binance, bybit
from dccd_core.sources.binance.open_interest import parse_open_interest as binance_parse
from dccd_core.sources.bybit.open_interest import parse_open_interest as bybit_parse
from dccd_core.storage import Store
from tests.fakes.kit import backfill_on, fast_source_on, polars_schema, recent_ms
from tests.fakes.open_interest import OI_FAKES, OpenInterest, oi_app

BINANCE_DOC = [
    {"symbol": "BTCUSDT", "sumOpenInterest": "20403.63700000",
     "sumOpenInterestValue": "150570784.07809979", "timestamp": 1583127900000},
]  # fmt: skip
BYBIT_DOC = {"retCode": 0, "retMsg": "OK", "result": {"symbol": "BTCUSD", "category": "inverse",
             "list": [{"openInterest": "461134384.00000000", "timestamp": "1669571400000"},
                      {"openInterest": "461134292.00000000", "timestamp": "1669571100000"}],
             "nextPageCursor": ""}}  # fmt: skip


def test_parsers_on_the_documented_rows() -> None:
    rows = binance_parse(BINANCE_DOC)
    assert rows.schema == polars_schema(DataType.OPEN_INTEREST)
    assert rows.row(0) == (1583127900000 * NS_PER_MS, 20403.637, 150570784.07809979)
    rows = bybit_parse(BYBIT_DOC)
    assert rows["ts"].to_list() == [1669571100000 * NS_PER_MS, 1669571400000 * NS_PER_MS]
    assert rows["open_interest_value"].null_count() == 2


def test_the_period_is_the_span_and_binance_keeps_thirty_days() -> None:
    with pytest.raises(ConfigError, match="open_interest needs a span"):
        DatasetKey.of("binance", "BTC/USDT:USDT", "open_interest")
    now = now_ns()
    with pytest.raises(NoCapability, match="only the last 30 days of open_interest"):
        binance.CAPABILITY.require(DataType.OPEN_INTEREST, start_ts=now - 31 * NS_PER_DAY,
                                   now_ts=now)  # fmt: skip
    feature = bybit.CAPABILITY.feature(DataType.OPEN_INTEREST)
    assert feature is not None and feature.history_days is None


@pytest.mark.parametrize("exchange", sorted(OI_FAKES))
async def test_stored_open_interest_equals_the_truth(tmp_path: Path, exchange: str) -> None:
    first_ms, end_ms = recent_ms(20)
    fake = OI_FAKES[exchange](OpenInterest(first_ms, end_ms))
    key = DatasetKey.of(exchange, "BTC/USDT:USDT", "open_interest", "5m")
    start, end = first_ms * NS_PER_MS, end_ms * NS_PER_MS
    store = Store(tmp_path)
    result = await backfill_on(exchange, oi_app(exchange, fake), key, store, start=start, end=end)
    truth = fake.data.truth("5m", start, end, value=fake.value)
    assert truth.height > 5_000  # twenty days of 5 minutes: many pages
    assert_frame_equal(store.read(key, start, end), truth, check_dtypes=False)
    assert result.rows_new == truth.height
    assert store.coverage(key).holes(start, end) == []


async def test_binance_older_than_thirty_days_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    end_ms = now_ns() // NS_PER_MS
    fake = OI_FAKES["binance"](OpenInterest(end_ms - 40 * NS_PER_DAY // NS_PER_MS, end_ms))
    key = DatasetKey.of("binance", "BTC/USDT:USDT", "open_interest", "1h")
    async with fast_source_on("binance", oi_app("binance", fake)) as source:
        with pytest.raises(NoCapability, match="last 30 days"):
            await backfill(key, start=now_ns() - 35 * NS_PER_DAY, store=Store(tmp_path),
                           source=source)  # fmt: skip
    assert fake.requests == []
