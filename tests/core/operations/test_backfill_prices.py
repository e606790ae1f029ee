"""Mark and index price candles: parsers on the documented rows, and backfills against the
fakes of Binance USD-M, Bybit and OKX equal to the truth across pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from dccd_core.domain import (
    NS_PER_MS,
    ConfigError,
    DatasetKey,
    DataType,
    NoCapability,
    Span,
    Symbol,
    to_ns,
)
from dccd_core.sources import bitmex
from dccd_core.sources.binance.prices import build_price_candles_request as binance_request
from dccd_core.sources.binance.prices import parse_price_candles as binance_parse
from dccd_core.sources.bybit.prices import parse_price_candles as bybit_parse
from dccd_core.sources.okx.prices import build_price_candles_request as okx_request
from dccd_core.sources.okx.prices import parse_price_candles as okx_parse
from dccd_core.storage import Store
from tests.fakes.kit import backfill_on, polars_schema, recent_ms
from tests.fakes.prices import PRICE_FAKES, PriceBars, prices_app

LINEAR = Symbol("BTC", "USDT", "USDT")
H1 = Span.parse("1h")
#: documented rows: Binance's kline row with "ignore" volumes, Bybit's five strings
#: newest first, OKX's six (``confirm`` last) newest first
BINANCE_ROW = [1591256400000, "9653.69440000", "9653.69640000", "9651.38600000",
               "9651.55200000", "0", 1591256459999, "0", 60, "0", "0", "0"]  # fmt: skip
BYBIT_ROWS = [["1670608800000", "17164.16", "17164.16", "17121.5", "17131.64"],
              ["1670608740000", "17160.1", "17166.4", "17150.0", "17164.16"]]  # fmt: skip
BYBIT_BODY = {"retCode": 0, "retMsg": "OK",
              "result": {"symbol": "BTCUSDT", "category": "linear", "list": BYBIT_ROWS}}
OKX_BODY = {"code": "0", "msg": "", "data": [
    ["1597026383085", "3.721", "3.743", "3.677", "3.708", "1"],
    ["1597026323085", "3.731", "3.799", "3.494", "3.72", "1"]]}  # fmt: skip


def test_parsers_give_price_bars_with_null_volumes() -> None:
    for frame, first_ts in (
        (binance_parse([BINANCE_ROW], DataType.MARK), 1591256400000),
        (bybit_parse(BYBIT_BODY, DataType.INDEX), 1670608740000),
        (okx_parse(OKX_BODY, DataType.MARK), 1597026323085),
    ):
        assert frame.schema == polars_schema(DataType.MARK)
        assert frame["ts"][0] == first_ts * NS_PER_MS
        assert frame["ts"].is_sorted()
        assert frame["volume"].null_count() == frame.height


def test_requests_name_the_right_instrument() -> None:
    a, b = to_ns("2024-01-01"), to_ns("2024-01-02")
    assert binance_request(DataType.MARK, LINEAR, H1, a, b).params["symbol"] == "BTCUSDT"
    index = binance_request(DataType.INDEX, LINEAR, H1, a, b)
    assert index.path == "/fapi/v1/indexPriceKlines" and index.params["pair"] == "BTCUSDT"
    okx_index = okx_request(DataType.INDEX, LINEAR, H1, a, b)
    assert okx_index.params["instId"] == "BTC-USDT"  # the index, not the swap
    assert okx_request(DataType.MARK, LINEAR, H1, a, b).params["instId"] == "BTC-USDT-SWAP"
    with pytest.raises(NoCapability, match="perpetual"):
        binance_request(DataType.MARK, Symbol("BTC", "USDT"), H1, a, b)


def test_keys_need_a_span_and_a_perpetual() -> None:
    with pytest.raises(ConfigError, match="mark needs a span"):
        DatasetKey.of("okx", "BTC/USDT:USDT", "mark")
    with pytest.raises(ConfigError, match="index needs a perpetual symbol like BTC/USDT:USDT"):
        DatasetKey.of("okx", "BTC/USDT", "index", "1h")
    assert bitmex.CAPABILITY.feature(DataType.MARK) is None  # BitMEX has no such endpoint


@pytest.mark.parametrize("data_type", ["mark", "index"])
@pytest.mark.parametrize("exchange", sorted(PRICE_FAKES))
async def test_stored_price_candles_equal_the_truth(
    tmp_path: Path, exchange: str, data_type: str
) -> None:
    first_ms, end_ms = recent_ms(3)
    fake = PRICE_FAKES[exchange](PriceBars(first_ms, end_ms, 1), PriceBars(first_ms, end_ms, 2))
    key = DatasetKey.of(exchange, "BTC/USDT:USDT", data_type, "1m")
    start, end = first_ms * NS_PER_MS, end_ms * NS_PER_MS
    store = Store(tmp_path)
    app = prices_app(exchange, fake)
    result = await backfill_on(exchange, app, key, store, start=start, end=end)
    bars = fake.mark if data_type == "mark" else fake.index
    truth = bars.truth("1m", start, end)
    assert truth.height > 4_000  # three days of minutes: many pages on every exchange
    assert_frame_equal(store.read(key, start, end), truth, check_dtypes=False)
    assert result.rows_new == truth.height
    assert store.coverage(key).holes(start, end) == []
