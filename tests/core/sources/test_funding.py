"""Funding history: parsers on the documented bodies, request builders, refusals."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from dccd_core.domain import (
    NS_PER_MS,
    ConfigError,
    DatasetKey,
    DataType,
    NoCapability,
    Symbol,
    UnexpectedPayload,
    check_rows,
    now_ns,
    schema_for,
    to_ns,
)
from dccd_core.sources import binance, bitmex, bybit, okx
from dccd_core.sources.binance.funding import build_funding_request as binance_request
from dccd_core.sources.binance.funding import parse_funding as binance_parse
from dccd_core.sources.bitmex.funding import parse_funding as bitmex_parse
from dccd_core.sources.bitmex.rest import build_funding_request as bitmex_request
from dccd_core.sources.bybit.funding import build_funding_request as bybit_request
from dccd_core.sources.bybit.funding import parse_funding as bybit_parse
from dccd_core.sources.okx.funding import build_funding_request as okx_request
from dccd_core.sources.okx.funding import parse_funding as okx_parse

LINEAR = Symbol("BTC", "USDT", "USDT")
SPOT = Symbol("BTC", "USDT")
SCHEMA = pl.Schema(schema_for(DataType.FUNDING))
A, B = to_ns("2024-01-01"), to_ns("2024-01-02")

# -- the documented bodies (see each source's funding.py for the doc) ----------------

BINANCE_DOC = [
    {"symbol": "BTCUSDT", "fundingRate": "-0.03750000", "fundingTime": 1570608000000,
     "markPrice": "34287.54619963"},
    {"symbol": "BTCUSDT", "fundingRate": "0.00010000", "fundingTime": 1570636800000,
     "markPrice": ""},
]  # fmt: skip
BYBIT_DOC = {
    "retCode": 0, "retMsg": "OK",
    "result": {"category": "linear", "list": [
        {"symbol": "BTCUSDT", "fundingRate": "0.0001", "fundingRateTimestamp": "1672776000000"},
        {"symbol": "BTCUSDT", "fundingRate": "-0.00004", "fundingRateTimestamp": "1672747200000"},
    ]},
}  # fmt: skip
OKX_DOC = {
    "code": "0", "msg": "",
    "data": [
        {"formulaType": "noRate", "fundingRate": "0.0000746604960499",
         "fundingTime": "1703059200000", "instId": "BTC-USD-SWAP", "instType": "SWAP",
         "method": "next_period", "realizedRate": "0.0000746572360545"},
        {"formulaType": "noRate", "fundingRate": "0.000227985782722",
         "fundingTime": "1703030400000", "instId": "BTC-USD-SWAP", "instType": "SWAP",
         "method": "next_period", "realizedRate": ""},
    ],
}  # fmt: skip
BITMEX_DOC = [
    {"timestamp": "2020-05-07T12:00:00.000Z", "symbol": "XBTUSD",
     "fundingInterval": "2000-01-01T08:00:00.000Z", "fundingRate": -0.00164,
     "fundingRateDaily": -0.00492},
    {"timestamp": "2020-05-07T20:00:00.000Z", "symbol": "XBTUSD",
     "fundingInterval": "2000-01-01T08:00:00.000Z", "fundingRate": 0.0001,
     "fundingRateDaily": 0.0003},
]  # fmt: skip


def test_binance_parse_keeps_strings_exact_and_empty_mark_as_null() -> None:
    rows = binance_parse(BINANCE_DOC)
    assert rows.schema == SCHEMA
    assert rows["ts"].to_list() == [1570608000000 * NS_PER_MS, 1570636800000 * NS_PER_MS]
    assert rows["rate"].to_list() == [-0.0375, 0.0001]
    assert rows["mark_price"].to_list() == [34287.54619963, None]
    assert rows["interval_h"].null_count() == 2


def test_bybit_parse_sorts_the_newest_first_page() -> None:
    rows = bybit_parse(BYBIT_DOC)
    assert rows.schema == SCHEMA
    assert rows["ts"].to_list() == [1672747200000 * NS_PER_MS, 1672776000000 * NS_PER_MS]
    assert rows["rate"].to_list() == [-0.00004, 0.0001]
    assert rows["mark_price"].null_count() == 2


def test_okx_parse_stores_the_realized_rate_else_the_set_rate() -> None:
    rows = okx_parse(OKX_DOC)
    assert rows["ts"].to_list() == [1703030400000 * NS_PER_MS, 1703059200000 * NS_PER_MS]
    assert rows["rate"].to_list() == [0.000227985782722, 0.0000746572360545]


def test_bitmex_parse_reads_numbers_and_the_interval_timespan() -> None:
    rows = bitmex_parse(BITMEX_DOC)
    assert rows.schema == SCHEMA
    assert rows["ts"].to_list() == [to_ns("2020-05-07T12:00:00Z"), to_ns("2020-05-07T20:00:00Z")]
    assert rows["rate"].to_list() == [-0.00164, 0.0001]
    assert rows["interval_h"].to_list() == [8, 8]


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (binance_parse, {"code": -1121, "msg": "Invalid symbol."}),
        (binance_parse, [{"fundingRate": "0.0001"}]),
        (binance_parse, [{"fundingTime": 1570608000000, "fundingRate": "abc"}]),
        (bybit_parse, {"retCode": 0, "result": {"list": None}}),
        (okx_parse, {"code": "0", "data": [{"fundingTime": "1703059200000"}]}),
        (bitmex_parse, [{"timestamp": "2020-05-07T12:00:00.000Z", "fundingRate": None}]),
        (bitmex_parse, [{**BITMEX_DOC[0], "fundingInterval": "2000-01-01T08:30:00.000Z"}]),
    ],
)
def test_changed_wire_formats_are_refused(parse: Any, body: Any) -> None:
    with pytest.raises(UnexpectedPayload):
        parse(body)


def test_empty_pages_are_empty_frames() -> None:
    assert binance_parse([]).schema == SCHEMA
    assert bybit_parse({"retCode": 0, "result": {"list": []}}).height == 0
    assert okx_parse({"code": "0", "data": []}).height == 0
    assert bitmex_parse([]).height == 0


# -- request builders: the window's bounds as each exchange reads them --------------


def test_binance_request_is_inclusive_ms_on_the_futures_path() -> None:
    request = binance_request(LINEAR, A, B)
    assert request.path == "/fapi/v1/fundingRate"
    assert request.params == {"symbol": "BTCUSDT", "startTime": str(A // NS_PER_MS),
                              "endTime": str(B // NS_PER_MS - 1), "limit": "1000"}  # fmt: skip
    assert request.weight == binance.capability.FUNDING_WEIGHT == 24


def test_bybit_request_sends_both_bounds() -> None:
    request = bybit_request(LINEAR, A, B)
    assert request.path == "/v5/market/funding/history"
    assert request.params["category"] == "linear"
    assert request.params["startTime"] == str(A // NS_PER_MS)
    assert request.params["endTime"] == str(B // NS_PER_MS - 1)
    assert request.params["limit"] == "200"


def test_okx_request_bounds_are_exclusive() -> None:
    request = okx_request(LINEAR, A, B)
    assert request.params == {"instId": "BTC-USDT-SWAP", "before": str(A // NS_PER_MS - 1),
                              "after": str(B // NS_PER_MS), "limit": "100"}  # fmt: skip


def test_bitmex_request_is_iso_oldest_first() -> None:
    request = bitmex_request("XBTUSDT", A, B)
    assert request.path == "/api/v1/funding"
    assert request.params["startTime"] == "2024-01-01T00:00:00.000Z"
    assert request.params["endTime"] == "2024-01-01T23:59:59.999Z"
    assert request.params["reverse"] == "false"


@pytest.mark.parametrize("build", [binance_request, bybit_request, okx_request])
def test_spot_symbols_are_refused_by_the_builders(build: Any) -> None:
    with pytest.raises(NoCapability, match="perpetual"):
        build(SPOT, A, B)


# -- the domain: key, plausibility, capability -----------------------------------------


def test_a_spot_symbol_is_one_clear_error_before_any_request() -> None:
    with pytest.raises(ConfigError, match=r"funding needs a perpetual symbol like BTC/USDT:USDT"):
        DatasetKey.of("binance", "BTC/USDT", "funding")
    with pytest.raises(ConfigError, match="no span"):
        DatasetKey.of("binance", "BTC/USDT:USDT", "funding", "1h")
    key = DatasetKey.of("bybit", "BTC/USDT:USDT", "funding")
    assert key.asset_key_path == ["bybit", "funding", "btc_usdt_usdt"]


def test_implausible_rates_and_marks_are_refused() -> None:
    good = binance_parse(BINANCE_DOC)
    check_rows(good, DataType.FUNDING, origin="t")
    for bad in (
        good.with_columns(pl.lit(1.5).alias("rate")),  # 150 %: a percent read as a fraction
        good.with_columns(pl.lit(float("nan")).alias("rate")),
        good.with_columns(pl.lit(-3.0).alias("mark_price")),
    ):
        with pytest.raises(UnexpectedPayload, match="funding page rejected"):
            check_rows(bad, DataType.FUNDING, origin="t")


def test_capabilities_declare_funding_and_okx_keeps_three_months() -> None:
    for capability in (binance.CAPABILITY, bybit.CAPABILITY, okx.CAPABILITY, bitmex.CAPABILITY):
        assert capability.feature(DataType.FUNDING) is not None
    now = now_ns()
    okx.CAPABILITY.require(DataType.FUNDING, start_ts=now - 80 * 86_400 * 10**9, now_ts=now)
    with pytest.raises(NoCapability, match="only the last 90 days of funding"):
        okx.CAPABILITY.require(DataType.FUNDING, start_ts=now - 100 * 86_400 * 10**9, now_ts=now)
