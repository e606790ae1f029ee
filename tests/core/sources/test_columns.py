"""The shared column builders: numbers as numbers or strings pass, anything else raises."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dccd_core.domain import NS_PER_MS, DataType, UnexpectedPayload, s_to_ns, schema_for
from dccd_core.sources.book_checksum import interleaved_checksum, interleaved_text
from dccd_core.sources.columns import (
    book_frame,
    ceil_ms,
    empty_frame,
    float_column,
    float_levels,
    int_column,
    iso_to_ns_column,
    level_texts,
    levels_frame,
    ms_to_ns_column,
    rows_to_columns,
    seconds_to_ns_column,
    side_column,
    text_column,
    to_schema,
)

W = "test payload"


def test_float_column_takes_numbers_strings_and_both_mixed() -> None:
    assert float_column("p", [1, 2.5, "3.25", "1e3"], W).to_list() == [1.0, 2.5, 3.25, 1000.0]
    assert float_column("p", ["42315.5", "42316"], W).to_list() == [42315.5, 42316.0]
    assert float_column("p", (), W).dtype == pl.Float64
    assert float_column("p", [1.5, None], W, optional=True).to_list() == [1.5, None]


@pytest.mark.parametrize(
    "values",
    [[None], [True], [1.0, False], ["1", True], ["n/a"], ["nan"], [float("nan")], ["inf"],
     [[1.0]], [{"p": 1}], [" 1"], ["1", 2, "x"]],
)
def test_float_column_refuses_what_is_not_a_number(values: list[Any]) -> None:
    with pytest.raises(UnexpectedPayload, match="'price'"):
        float_column("price", values, W)


def test_int_column_refuses_floats_and_fractions() -> None:
    assert int_column("n", [1, "2", 3], W).to_list() == [1, 2, 3]
    assert int_column("n", [1, None], W, optional=True).to_list() == [1, None]
    for bad in ([1.0], ["2.0"], [2.5], ["1e3"], [True], [None], [2**70], ["x"], ["1", 2, "y"]):
        with pytest.raises(UnexpectedPayload, match="'n'"):
            int_column("n", bad, W)


def test_text_column_takes_strings_and_integer_ids() -> None:
    assert text_column("id", ["a1", 123], W).to_list() == ["a1", "123"]
    for bad in ([None], [1.5], [True], [""]):
        with pytest.raises(UnexpectedPayload, match="'id'"):
            text_column("id", bad, W)


def test_time_columns_to_ns() -> None:
    assert ms_to_ns_column("ts", [1704067200123, "1704067200124"], W).to_list() == [
        1704067200123 * NS_PER_MS,
        1704067200124 * NS_PER_MS,
    ]
    kraken_s = [1688669597.8277369, "1688669597.8277369", 1704085200]
    assert seconds_to_ns_column("ts", kraken_s, W).to_list() == [s_to_ns(v) for v in kraken_s]
    iso = ["2024-01-01T00:00:00Z", "2024-01-01T02:59:58.123456Z", "2023-10-04T16:25:00.000000001Z"]
    assert iso_to_ns_column("ts", iso, W).to_list() == [
        1704067200000000000,
        1704077998123456000,
        1696436700000000001,
    ]
    for bad in ([1704067200], ["2024-01-01 00:00:00"], ["2024-01-01T00:00:00+01:00"], [None]):
        with pytest.raises(UnexpectedPayload, match="'ts'"):
            iso_to_ns_column("ts", bad, W)


@given(st.integers(min_value=0, max_value=2**62))
def test_ceil_ms_is_the_first_ms_at_or_after(ts: int) -> None:
    ms = ceil_ms(ts)
    assert ms * NS_PER_MS >= ts > (ms - 1) * NS_PER_MS


def test_rows_to_columns_checks_shape() -> None:
    assert rows_to_columns([[1, 2, 3], [4, 5, 6, 7]], 2, W) == [(1, 4), (2, 5)]
    assert rows_to_columns([], 3, W) == [(), (), ()]
    for bad in ({"a": 1}, [[1]], [(1, 2)], [None]):
        with pytest.raises(UnexpectedPayload):
            rows_to_columns(bad, 2, W)


def test_side_column_maps_the_exchange_table_only() -> None:
    sides = {"Buy": "buy", "Sell": "sell"}
    assert side_column(["Buy", "Sell"], sides, W).to_list() == ["buy", "sell"]
    with pytest.raises(UnexpectedPayload, match="'buy'"):
        side_column(["Buy", "buy"], sides, W)
    with pytest.raises(UnexpectedPayload):
        side_column([None], sides, W)


def test_book_frame_stamps_levels_best_first_in_the_schema() -> None:
    bids = levels_frame([["100.5", "2"], [100, 1, "extra"]], W)
    asks = levels_frame([[101, "0.5"], [102, "3"]], W, depth=1)
    book = book_frame(7, bids, asks)
    assert book.schema == pl.Schema(schema_for(DataType.BOOK))
    assert book.rows() == [
        (7, "bid", 0, 100.5, 2.0),
        (7, "bid", 1, 100.0, 1.0),
        (7, "ask", 0, 101.0, 0.5),
    ]
    empty = book_frame(7, levels_frame([], W), levels_frame([], W))
    assert empty.equals(empty_frame(DataType.BOOK))


def test_to_schema_orders_casts_and_fills_nullable_columns() -> None:
    frame = to_schema(
        DataType.OHLC,
        {name: pl.Series([1.0]) for name in ("close", "ts", "open", "high", "low", "volume")},
    )
    assert frame.schema == pl.Schema(schema_for(DataType.OHLC))
    assert frame.row(0) == (1, 1.0, 1.0, 1.0, 1.0, 1.0, None, None)


def test_ws_levels_keep_texts_and_refuse_bad_numbers() -> None:
    raw = [["8476.98", "415", "0", "13"], [8477, 0.00005]]
    assert level_texts(raw, W) == [("8476.98", "415"), ("8477", "5e-05")]
    assert float_levels(raw, W) == [(8476.98, 415.0), (8477.0, 0.00005)]
    for bad in ([["1", True]], [["1", None]], [["nan", "1"]], [["x", "1"]], [["1"]], {"a": 1}):
        with pytest.raises(UnexpectedPayload):
            float_levels(bad, W)


def test_interleaved_checksum_documented_example() -> None:
    bids = [("3366.1", "7"), ("3366", "6")]
    asks = [("3366.8", "9"), ("3368", "8")]
    assert interleaved_text(bids, asks, 25) == "3366.1:7:3366.8:9:3366:6:3368:8"
    assert interleaved_checksum(bids, asks, 25) == -1881014294
    assert interleaved_text(bids, asks, 1) == "3366.1:7:3366.8:9"
