"""Open interest against the fakes of Binance USD-M, Bybit and OKX: parsers on documented
rows, the store equal to the truth across pages, Binance's 30 days and OKX's latest 1,440
samples refused before a request."""

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
    Span,
    now_ns,
)
from dccd_core.operations.backfill import backfill
from dccd_core.sources import binance, bybit, okx
from dccd_core.sources.binance.open_interest import parse_open_interest as binance_parse
from dccd_core.sources.bybit.open_interest import parse_open_interest as bybit_parse
from dccd_core.sources.okx.open_interest import build_open_interest_request
from dccd_core.sources.okx.open_interest import parse_open_interest as okx_parse
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


OKX_DOC = {"code": "0", "msg": "", "data": [
    ["1701417600000", "731377.57500501", "7313.77575005", "283902854.81"],
    ["1701414000000", "732123.5", "7321.235", "284012345.1"]]}  # fmt: skip


def test_parsers_on_the_documented_rows() -> None:
    rows = okx_parse(OKX_DOC)  # oiCcy (base) stored, oiUsd as the value, oldest first
    assert rows.rows() == [(1701414000000 * NS_PER_MS, 7321.235, 284012345.1),
                           (1701417600000 * NS_PER_MS, 7313.77575005, 283902854.81)]  # fmt: skip
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


def test_okx_request_bounds_are_exclusive_and_periods_checked() -> None:
    from dccd_core.domain import Symbol

    perp, start_ms = Symbol("BTC", "USDT", "USDT"), 1_701_417_600_000
    hour = Span.parse("1h")
    request = build_open_interest_request(perp, hour, start_ms * NS_PER_MS,
                                          (start_ms + 3_600_000) * NS_PER_MS)  # fmt: skip
    assert request.path == "/api/v5/rubik/stat/contracts/open-interest-history"
    assert dict(request.params) == {"instId": "BTC-USDT-SWAP", "period": "1H",
                                    "begin": str(start_ms - 1), "end": str(start_ms + 3_600_000),
                                    "limit": "100"}  # fmt: skip
    with pytest.raises(NoCapability, match="okx has no 1m open interest: its periods are 5m"):
        build_open_interest_request(perp, Span.parse("1m"), 0, 1)
    with pytest.raises(NoCapability, match="okx open interest needs a perpetual swap"):
        build_open_interest_request(Symbol("BTC", "USDT"), hour, 0, 1)


@pytest.mark.parametrize("exchange", sorted(OI_FAKES))
async def test_stored_open_interest_equals_the_truth(tmp_path: Path, exchange: str) -> None:
    # OKX serves the latest 1,440 samples of a period: 5 days of 5m
    first_ms, end_ms = recent_ms(4 if exchange == "okx" else 20)
    fake = OI_FAKES[exchange](OpenInterest(first_ms, end_ms))
    key = DatasetKey.of(exchange, "BTC/USDT:USDT", "open_interest", "5m")
    start, end = first_ms * NS_PER_MS, end_ms * NS_PER_MS
    store = Store(tmp_path)
    result = await backfill_on(exchange, oi_app(exchange, fake), key, store, start=start, end=end)
    truth = fake.data.truth("5m", start, end, value=fake.value)
    assert truth.height > (1_000 if exchange == "okx" else 5_000)  # many pages
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


async def test_okx_older_than_its_latest_samples_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    end_ms = now_ns() // NS_PER_MS
    fake = OI_FAKES["okx"](OpenInterest(end_ms - 10 * NS_PER_DAY // NS_PER_MS, end_ms))
    key = DatasetKey.of("okx", "BTC/USDT:USDT", "open_interest", "5m")
    async with fast_source_on("okx", oi_app("okx", fake)) as source:
        with pytest.raises(NoCapability, match="okx keeps only the last 1440 5m samples"):
            await backfill(key, start=now_ns() - 6 * NS_PER_DAY, store=Store(tmp_path),
                           source=source)  # fmt: skip
    assert fake.requests == []
    # the 1h history reaches 60 days back: a week of it is served
    feature = okx.CAPABILITY.require(
        DataType.OPEN_INTEREST, span=Span.parse("1h"), start_ts=now_ns() - 7 * NS_PER_DAY,
        now_ts=now_ns(),
    )  # fmt: skip
    assert feature.history_bars == 1_440


async def test_bitmex_has_no_open_interest_history_and_says_so(tmp_path: Path) -> None:
    """BitMEX publishes open interest only as the instrument's current value (no
    history): a backfill is refused before any request, naming where to look."""
    key = DatasetKey.of("bitmex", "BTC/USDT:USDT", "open_interest", "1h")
    with pytest.raises(
        NoCapability,
        match=r"bitmex cannot serve open_interest over rest; docs/exchanges\.md lists",
    ):
        await backfill(key, start=now_ns() - NS_PER_DAY, store=Store(tmp_path))
    assert not list(tmp_path.iterdir())
