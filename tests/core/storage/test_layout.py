"""Paths and periods of the lake: one function derives them, nothing escapes the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from dccd_core.domain import ConfigError, DatasetKey, DataType, Span, Symbol
from dccd_core.storage.layout import (
    LOCK_DIR,
    PeriodKind,
    coverage_path,
    dataset_dir,
    list_datasets,
    list_period_files,
    lock_path,
    period_bounds,
    period_kind,
    period_of,
    period_path,
    periods_between,
)

from .helpers import BOOK, OHLC_1H, OHLC_1M, TRADES, ns


def test_dataset_dir_is_hive_partitioned(tmp_path: Path) -> None:
    assert dataset_dir(tmp_path, OHLC_1M) == (
        tmp_path / "ohlc" / "exchange=binance" / "symbol=BTC-USDT" / "span=1m"
    )
    perp = DatasetKey.of("bybit", "BTC/USDT:USDT", "trades")
    assert dataset_dir(tmp_path, perp) == tmp_path / "trades/exchange=bybit/symbol=BTC-USDT-USDT"
    assert period_path(tmp_path, OHLC_1H, "2024").name == "2024.parquet"


@pytest.mark.parametrize(
    ("key", "kind", "period"),
    [
        (OHLC_1M, PeriodKind.MONTH, "2024-02"),
        (DatasetKey.of("x", "A/B", "ohlc", "30m"), PeriodKind.MONTH, "2024-02"),
        (OHLC_1H, PeriodKind.YEAR, "2024"),
        (DatasetKey.of("x", "A/B", "ohlc", "1d"), PeriodKind.YEAR, "2024"),
        (DatasetKey.of("x", "A/B", "ohlc", "1w"), PeriodKind.YEAR, "2024"),
        (TRADES, PeriodKind.DAY, "2024-02-29"),
        (BOOK, PeriodKind.DAY, "2024-02-29"),
    ],
)
def test_period_of(key: DatasetKey, kind: PeriodKind, period: str) -> None:
    assert period_kind(key) is kind
    assert period_of(key, ns("2024-02-29T23:59:59.999999999Z")) == period


def test_period_bounds_edges() -> None:
    assert period_bounds(TRADES, "2024-02-29") == (ns("2024-02-29"), ns("2024-03-01"))
    assert period_bounds(OHLC_1M, "2024-12") == (ns("2024-12-01"), ns("2025-01-01"))
    assert period_bounds(OHLC_1M, "2024-02") == (ns("2024-02-01"), ns("2024-03-01"))
    assert period_bounds(OHLC_1H, "2024") == (ns("2024-01-01"), ns("2025-01-01"))
    for bad in ("2024-13", "24-01", "2024-1", "../2024", "2024-02-30"):
        with pytest.raises(ConfigError):
            period_bounds(OHLC_1M if bad.count("-") == 1 else TRADES, bad)


def test_periods_between() -> None:
    assert periods_between(TRADES, ns("2024-02-28T12:00"), ns("2024-03-01")) == [
        "2024-02-28",
        "2024-02-29",
    ]
    assert periods_between(TRADES, ns("2024-02-28"), ns("2024-03-01T00:00:00.000000001")) == [
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
    ]
    assert periods_between(OHLC_1M, ns("2023-12-31T23:59"), ns("2024-01-01T00:01")) == [
        "2023-12",
        "2024-01",
    ]
    assert periods_between(OHLC_1H, ns("2023-06-01"), ns("2025-06-01")) == [
        "2023",
        "2024",
        "2025",
    ]
    assert periods_between(OHLC_1H, 10, 10) == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: DatasetKey.of("../etc", "BTC/USDT", "trades"),
        lambda: DatasetKey.of("binance", "../../BTC/USDT", "trades"),
        lambda: DatasetKey.of("binance", "BTC/..", "trades"),
        lambda: DatasetKey.of("binance", "BTC/USDT", "../trades"),
        lambda: DatasetKey.of("binance", "BTC/USDT", "ohlc", "../1m"),
        lambda: DatasetKey.of("bin/ance", "BTC/USDT", "trades"),
    ],
)
def test_user_names_cannot_escape_the_root(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "symbol",
    [
        Symbol("..", "USDT"),
        Symbol("BTC", "../x"),
        Symbol("BTC", "USDT", "/"),
        Symbol("btc", "usdt"),
    ],
)
def test_hand_built_symbols_are_refused_by_the_layout(tmp_path: Path, symbol: Symbol) -> None:
    key = DatasetKey("binance", symbol, DataType.TRADES)
    with pytest.raises(ConfigError):
        dataset_dir(tmp_path, key)


def test_locks_and_coverage_stay_out_of_parquet_globs(tmp_path: Path) -> None:
    lock = lock_path(tmp_path, OHLC_1M)
    assert lock.parent == tmp_path / LOCK_DIR
    assert not lock.name.endswith(".parquet")
    assert coverage_path(tmp_path, OHLC_1M).parent == dataset_dir(tmp_path, OHLC_1M)
    assert not coverage_path(tmp_path, OHLC_1M).name.endswith(".parquet")


def test_listing_ignores_what_does_not_parse(tmp_path: Path) -> None:
    folder = dataset_dir(tmp_path, OHLC_1M)
    folder.mkdir(parents=True)
    for name in (
        "2024-01.parquet",
        "2023-12.parquet",
        ".2024-02.parquet.tmp-1-ab",
        "notes.txt",
        "2024.parquet",
        "2024-01-01.parquet",
    ):
        (folder / name).write_bytes(b"x")
    assert [f.period for f in list_period_files(tmp_path, OHLC_1M)] == ["2023-12", "2024-01"]
    # junk folders next to real ones
    for junk in (
        "ohlc/exchange=binance/symbol=btc-usdt/span=1m",  # not canonical
        "ohlc/exchange=binance/symbol=BTC-USDT/span=60m",  # not canonical
        "ohlc/exchange=binance/symbol=BTC_USDT/span=1m",
        "ohlc/exchange=Bad!/symbol=BTC-USDT/span=1m",
        "ohlc/exchange=binance/symbol=BTC-USDT/span=1x",
        "ohlc/exchange=binance/symbol=ETH-USDT/span=1m",  # empty: not a dataset
        "trades/exchange=binance/symbol=BTC-USDT",  # empty
        "weird/exchange=binance/symbol=BTC-USDT",
    ):
        (tmp_path / junk).mkdir(parents=True, exist_ok=True)
        if "ETH" not in junk and "trades" not in junk:
            (tmp_path / junk / "2024-01.parquet").write_bytes(b"x")
    trades_dir = dataset_dir(tmp_path, TRADES)
    (trades_dir / "2024-01-01.parquet").write_bytes(b"x")
    assert list_datasets(tmp_path) == [OHLC_1M, TRADES]
    assert list_datasets(tmp_path / "missing") == []


def test_span_labels_round_trip() -> None:
    for span in Span.all():
        key = DatasetKey("x", Symbol("A", "B"), DataType.OHLC, span)
        assert dataset_dir("/r", key).name == f"span={span.label}"
