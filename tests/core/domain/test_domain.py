"""Domain types: parsing, formatting, rejection messages, time conversions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dccd_core.domain import (
    Capability,
    ConfigError,
    DatasetKey,
    DataType,
    Feature,
    NoCapability,
    Span,
    Symbol,
    Transport,
    iso_datetime,
    s_to_ns,
    to_ns,
)


@pytest.mark.parametrize(
    ("text", "base", "quote", "settle"),
    [
        ("BTC/USDT", "BTC", "USDT", None),
        ("btc/usdt", "BTC", "USDT", None),
        (" BTC/USDT:USDT ", "BTC", "USDT", "USDT"),
        ("BTC/USD:BTC", "BTC", "USD", "BTC"),
        ("1000PEPE/USDT", "1000PEPE", "USDT", None),
    ],
)
def test_symbol_parses_unified_forms(text: str, base: str, quote: str, settle: str | None) -> None:
    symbol = Symbol.parse(text)
    assert (symbol.base, symbol.quote, symbol.settle) == (base, quote, settle)
    assert Symbol.parse(str(symbol)) == symbol
    assert Symbol.from_path(symbol.path_name) == symbol


@pytest.mark.parametrize(
    "text", ["BTCUSDT", "BTC/", "/USDT", "BTC/USDT:", "../etc/passwd", "BTC/US DT", "BTC-USDT", ""]
)
def test_symbol_rejects_garbage_showing_accepted_forms(text: str) -> None:
    with pytest.raises(ConfigError, match=r"BASE/QUOTE"):
        Symbol.parse(text)


def test_symbol_names() -> None:
    symbol = Symbol.parse("BTC/USDT:USDT")
    assert symbol.path_name == "BTC-USDT-USDT"
    assert symbol.key_name == "btc_usdt_usdt"
    assert symbol.is_perpetual


@pytest.mark.parametrize(
    "label", ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "1w"]
)
def test_span_labels_round_trip(label: str) -> None:
    span = Span.parse(label)
    assert span.label == label
    assert Span.parse(span.seconds) == span


def test_span_normalises_and_rejects() -> None:
    assert Span.parse("60m").label == "1h"
    assert Span.parse("24h").label == "1d"
    for bad in ["7m", "1y", "abc", 61, "", "m"]:
        with pytest.raises(ConfigError, match="1m 3m 5m"):
            Span.parse(bad)


@pytest.mark.parametrize("month", ["1M", "3M", " 1M "])
def test_capital_m_is_a_month_and_refused(month: str) -> None:
    """ccxt and every exchange write a month as ``1M``: never read it as a minute."""
    with pytest.raises(ConfigError, match=r"is (one month|3 months).*use 1d or 1w"):
        Span.parse(month)


def test_spans_are_case_sensitive() -> None:
    assert Span.parse("1m") == Span(label="1m", seconds=60)
    for upper, lower in [("1H", "1h"), ("1D", "1d"), ("1W", "1w"), ("15M", None)]:
        with pytest.raises(ConfigError) as info:
            Span.parse(upper)
        assert (f"write {lower}" in str(info.value)) if lower else "15 months" in str(info.value)


def test_weekly_span_floors_to_monday() -> None:
    week = Span.parse("1w")
    wednesday = to_ns("2024-01-03T12:00:00Z")
    assert week.floor(wednesday) == to_ns("2024-01-01")  # a Monday


@given(st.integers(min_value=0, max_value=4_000_000_000_000_000_000))
def test_span_floor_is_aligned_and_contains(ts: int) -> None:
    for span in Span.all():
        floor = span.floor(ts)
        assert floor <= ts < floor + span.ns


def test_data_type_parse() -> None:
    assert DataType.parse("OHLC") is DataType.OHLC
    with pytest.raises(ConfigError, match="ohlc, trades, book"):
        DataType.parse("candles")


def test_time_helpers() -> None:
    assert to_ns("2024-01-01") == 1_704_067_200_000_000_000
    assert to_ns(date(2024, 1, 1)) == 1_704_067_200_000_000_000
    assert to_ns(datetime(2024, 1, 1, tzinfo=UTC)) == 1_704_067_200_000_000_000
    assert to_ns(datetime(2024, 1, 1)) == 1_704_067_200_000_000_000  # naive = UTC
    assert to_ns("2024-01-01T00:00:00.000000001Z") == 1_704_067_200_000_000_001
    assert to_ns("2024-01-01T01:00:00+01:00") == 1_704_067_200_000_000_000
    assert to_ns("1704067200000000000") == 1_704_067_200_000_000_000
    assert iso_datetime(1_704_067_200_000_000_001) == "2024-01-01T00:00:00.000000001Z"
    assert s_to_ns(1715691134.5829418) == 1_715_691_134_582_942_000  # not ...582941696
    assert s_to_ns("1712345678") == 1_712_345_678_000_000_000
    with pytest.raises(ConfigError, match="ISO date"):
        to_ns("yesterday")


def test_dataset_key_names_and_validation() -> None:
    key = DatasetKey.of("Binance", "btc/usdt", "ohlc", "1m")
    assert key.asset_key_path == ["binance", "ohlc", "btc_usdt_1m"]
    assert key.job_name == "binance__ohlc__btc_usdt_1m"
    assert DatasetKey.of("binance", "BTC/USDT:USDT", "trades").name == "btc_usdt_usdt"
    with pytest.raises(ConfigError, match="needs a span"):
        DatasetKey.of("binance", "BTC/USDT", "ohlc")
    with pytest.raises(ConfigError, match="has no span"):
        DatasetKey.of("binance", "BTC/USDT", "trades", "1m")
    for bad in ["../x", "bin/ance", "", "a" * 41]:
        with pytest.raises(ConfigError, match="exchange id"):
            DatasetKey.of(bad, "BTC/USDT", "trades")


def test_capability_require_explains() -> None:
    one_minute = Span.parse("1m")
    cap = Capability(
        exchange="kraken",
        features=(
            Feature(
                DataType.OHLC,
                Transport.REST,
                page_limit=720,
                spans=(one_minute,),
                history_bars=720,
                alternative="derive candles from trades",
            ),
            Feature(DataType.TRADES, Transport.REST, page_limit=1000),
        ),
    )
    now = to_ns("2024-06-01")
    assert cap.require(DataType.OHLC, span=one_minute, start_ts=now - 60 * 10**9, now_ts=now)
    with pytest.raises(NoCapability, match=r"last 720 1m candles.*derive candles"):
        cap.require(DataType.OHLC, span=one_minute, start_ts=to_ns("2024-01-01"), now_ts=now)
    with pytest.raises(NoCapability, match=r"no 1h candles.*1m"):
        cap.require(DataType.OHLC, span=Span.parse("1h"))
    with pytest.raises(NoCapability, match="cannot serve book"):
        cap.require(DataType.BOOK)


def test_check_rows_refuses_implausible_values() -> None:
    import polars as pl

    from dccd_core.domain import UnexpectedPayload, check_rows

    now = to_ns("2024-06-01")
    good = pl.DataFrame(
        {
            "ts": [to_ns("2024-05-31")],
            "trade_id": ["1"],
            "price": [1.0],
            "amount": [0.0],
            "side": ["buy"],
        }
    )
    check_rows(good, DataType.TRADES, origin="x", now_ts=now)
    cases = {
        "implausible timestamp": good.with_columns(pl.lit(1_717_000_000_000).alias("ts")),
        "price that is not": good.with_columns(pl.lit(float("nan")).alias("price")),
        "amount that is not": good.with_columns(pl.lit(-1.0).alias("amount")),
        "side not in": good.with_columns(pl.lit("Buy").alias("side")),
    }
    for problem, rows in cases.items():
        with pytest.raises(UnexpectedPayload, match=problem):
            check_rows(rows, DataType.TRADES, origin="x", now_ts=now)
    future = good.with_columns(pl.lit(to_ns("2024-06-03")).alias("ts"))
    with pytest.raises(UnexpectedPayload, match="implausible timestamp"):
        check_rows(future, DataType.TRADES, origin="x", now_ts=now)


def test_check_trade_id_order_refuses_ids_rising_while_times_fall() -> None:
    import polars as pl

    from dccd_core.domain import UnexpectedPayload, check_trade_id_order

    def page(ids: list[str], secs: list[int]) -> pl.DataFrame:
        day = to_ns("2024-05-31")
        return pl.DataFrame({"trade_id": ids, "ts": [day + s * 10**9 for s in secs]})

    # equal times are one match; newest-first order is fine; derived ids are not compared
    edges = check_trade_id_order(page(["3", "2", "1"], [5, 5, 4]), origin="x")
    assert edges == ((1, to_ns("2024-05-31") + 4 * 10**9), (3, to_ns("2024-05-31") + 5 * 10**9))
    assert check_trade_id_order(page(["b-1", "a-2"], [5, 4]), origin="x") is None
    with pytest.raises(UnexpectedPayload, match=r"trade 3 at .* is dated before trade 2"):
        check_trade_id_order(page(["1", "2", "3"], [1, 5, 4]), origin="x")
    # across pages: the next page must not contradict the previous one's ids
    check_trade_id_order(page(["4", "5"], [5, 6]), origin="x", edges=edges)
    with pytest.raises(UnexpectedPayload, match=r"trade 4 at .* is dated before trade 3"):
        check_trade_id_order(page(["4", "5"], [4, 6]), origin="x", edges=edges)
