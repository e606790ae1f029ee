"""Derived candles: bars computed from stored trades equal a naive per-bar aggregation."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_S, ConfigError, DatasetKey, DataType, Span, to_ns
from dccd_core.operations.derive import aggregate_trades, combine_partials, derive_candles
from dccd_core.storage import Store

TRADES = DatasetKey.of("kraken", "BTC/USD", "trades")
#: Saturday 2024-01-06 .. Wednesday 2024-01-10: crosses day ends and a Monday (week start).
T0 = to_ns("2024-01-06")
T1 = to_ns("2024-01-10T12:00:00")
FAR_FUTURE = to_ns("2030-01-01")
SPANS = [Span.parse(s) for s in ("1m", "15m", "4h", "1d", "1w")]


def naive_bars(trades: list[tuple[int, str, float, float]], span: Span) -> pl.DataFrame:
    """The reference: group rows by ``Span.floor`` in plain Python, stored order."""
    bars: dict[int, list[tuple[int, str, float, float]]] = {}
    for row in sorted(trades, key=lambda r: (r[0], r[1])):
        bars.setdefault(span.floor(row[0]), []).append(row)
    out = []
    for ts in sorted(bars):
        rows = bars[ts]
        prices = [r[2] for r in rows]
        out.append(
            {
                "ts": ts,
                "open": prices[0],
                "high": max(prices),
                "low": min(prices),
                "close": prices[-1],
                "volume": sum(r[3] for r in rows),
                "quote_volume": sum(r[2] * r[3] for r in rows),
                "trades": len(rows),
            }
        )
    schema = {"ts": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
              "close": pl.Float64, "volume": pl.Float64, "quote_volume": pl.Float64,
              "trades": pl.Int64}
    return pl.DataFrame(out, schema=schema)


def trades_frame(trades: list[tuple[int, str, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [t[0] for t in trades],
            "trade_id": [t[1] for t in trades],
            "price": [t[2] for t in trades],
            "amount": [t[3] for t in trades],
            "side": ["buy" if i % 2 else "sell" for i in range(len(trades))],
        },
        schema={"ts": pl.Int64, "trade_id": pl.String, "price": pl.Float64,
                "amount": pl.Float64, "side": pl.String},
    )


def store_with(root: Path, trades: list[tuple[int, str, float, float]],
               covered: tuple[int, int] = (to_ns("2023-12-25"), to_ns("2024-01-22"))) -> Store:
    store = Store(root)
    if trades:
        store.write(TRADES, trades_frame(trades))
    store.record_coverage(TRADES, *covered)
    return store


# ts: whole seconds (many in the same bar) plus a few ms offsets (ties on equal ts)
_ts = st.builds(
    lambda s, ms: T0 + s * NS_PER_S + ms * 1_000_000,
    st.integers(0, (T1 - T0) // NS_PER_S - 1),
    st.sampled_from([0, 0, 0, 1, 999]),
)
_trade_lists = st.lists(
    st.tuples(_ts, st.integers(1, 10_000), st.integers(1, 5_000)), min_size=0, max_size=300
).map(
    lambda rows: [
        (ts, str(1_000 + i), price / 100, amount / 1_000)
        for i, (ts, price, amount) in enumerate(rows)
    ]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trades=_trade_lists, span=st.sampled_from(SPANS))
def test_derived_bars_equal_naive_aggregation(
    trades: list[tuple[int, str, float, float]], span: Span
) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = store_with(Path(root), trades)
        key = DatasetKey("kraken", TRADES.symbol, DataType.OHLC, span)
        result = derive_candles(store, key, T0, T1, now_ts=FAR_FUTURE)
        stored = store.read(key)
    expected = naive_bars(trades, span)
    assert result.bars == expected.height == stored.height
    assert result.trades == len(trades)
    assert_frame_equal(stored, expected, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(trades=_trade_lists.filter(bool), span=st.sampled_from(SPANS), cuts=st.lists(
    st.integers(T0, T1), max_size=4))
def test_partials_combine_to_the_whole(
    trades: list[tuple[int, str, float, float]], span: Span, cuts: list[int]
) -> None:
    frame = trades_frame(sorted(trades, key=lambda r: (r[0], r[1])))
    edges = [T0, *sorted(cuts), T1]
    parts = [
        aggregate_trades(frame.filter((pl.col("ts") >= a) & (pl.col("ts") < b)), span)
        for a, b in itertools.pairwise(edges)
    ]
    combined = combine_partials(pl.concat(parts))
    whole = aggregate_trades(frame, span)
    assert_frame_equal(combined, whole, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def _day_of_trades(day: str, per_hour: int = 3) -> list[tuple[int, str, float, float]]:
    base = to_ns(day)
    return [
        (base + h * 3_600 * NS_PER_S + k * 600 * NS_PER_S, f"{day}-{h:02d}-{k}",
         100.0 + h + k / 10, 0.5 + k)
        for h in range(24)
        for k in range(per_hour)
    ]


def test_weekly_bar_spans_days_and_open_bar_is_not_written(tmp_path: Path) -> None:
    # Mon 2024-01-08 .. Mon 2024-01-15 (whole week) plus Tuesday of the next week
    days = [f"2024-01-{d:02d}" for d in range(8, 17)]
    trades = [t for d in days for t in _day_of_trades(d)]
    store = store_with(tmp_path, trades, (to_ns("2024-01-08"), to_ns("2024-01-16T12:00")))
    key = DatasetKey.of("kraken", "BTC/USD", "ohlc", "1w")
    now = to_ns("2024-01-16T12:00")
    result = derive_candles(store, key, "2024-01-10", "2024-01-17", now_ts=now)
    stored = store.read(key)
    # only the closed week; the week of 2024-01-15 is still open
    assert stored["ts"].to_list() == [to_ns("2024-01-08")]
    week = [t for t in trades if to_ns("2024-01-08") <= t[0] < to_ns("2024-01-15")]
    assert_frame_equal(stored, naive_bars(week, key.span), check_exact=False)  # type: ignore[arg-type]
    assert result.open_bars == 1 and result.bars == 1
    assert result.start_ts == to_ns("2024-01-08") and result.end_ts == to_ns("2024-01-22")
    assert store.coverage(key).ranges == ((to_ns("2024-01-08"), to_ns("2024-01-15")),)
    # provenance says where the bars came from
    period = next((tmp_path / "ohlc").rglob("*.parquet"))
    meta = {k.decode(): v.decode() for k, v in pq.read_metadata(period).metadata.items()}
    assert meta["transport"] == "derived" and meta["derived_from"] == "trades"


def test_bars_without_trades_are_absent_and_holes_are_not_derived(tmp_path: Path) -> None:
    # trades 00:00-06:00 and 12:00-24:00; coverage has a hole 18:00-19:30
    hour_ns = 3_600 * NS_PER_S
    trades = [t for t in _day_of_trades("2024-01-09") if not 6 <= t[0] // hour_ns % 24 < 12]
    store = store_with(tmp_path, [], (to_ns("2024-01-09"), to_ns("2024-01-09T18:00")))
    store.write(TRADES, trades_frame(trades))
    store.record_coverage(TRADES, to_ns("2024-01-09T19:30"), to_ns("2024-01-10"))
    key = DatasetKey.of("kraken", "BTC/USD", "ohlc", "1h")
    result = derive_candles(store, key, "2024-01-09", "2024-01-10", now_ts=FAR_FUTURE)
    hours = [(ts - to_ns("2024-01-09")) // hour_ns for ts in store.read(key)["ts"]]
    assert hours == [*range(6), *range(12, 18), *range(20, 24)]
    assert result.bars == len(hours)
    assert result.uncovered == ((to_ns("2024-01-09T18:00"), to_ns("2024-01-09T20:00")),)
    # empty hours 06-12 are covered (fetched, no trades): no hole in the candles either
    assert store.holes(key, to_ns("2024-01-09"), to_ns("2024-01-09T18:00")) == []


def test_rerun_is_idempotent_and_refuses_a_trades_key(tmp_path: Path) -> None:
    store = store_with(tmp_path, _day_of_trades("2024-01-09"))
    key = DatasetKey.of("kraken", "BTC/USD", "ohlc", "4h")
    first = derive_candles(store, key, "2024-01-09", "2024-01-10", now_ts=FAR_FUTURE)
    again = derive_candles(store, key, "2024-01-09", "2024-01-10", now_ts=FAR_FUTURE)
    assert first.bars == again.bars == 6
    assert first.write.new_rows == 6 and again.write.new_rows == 0
    with pytest.raises(ConfigError, match="not an ohlc dataset"):
        derive_candles(store, TRADES, "2024-01-09", "2024-01-10")
