"""Derived candle assets: catalog ``derive:``, definitions, and a materialization on an
ephemeral instance whose stored bars equal candles computed independently from the
truth trades (polars ``group_by_dynamic``, not the code under test)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_S, ConfigError, DatasetKey, to_ns
from dccd_core.storage import Store
from dccd_pipelines.assets import build_dataset_asset
from dccd_pipelines.checks import build_dataset_checks
from dccd_pipelines.resources import dccd_resources

from .conftest import make_catalog

TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
NO_SERVER = "http://127.0.0.1:9"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def truth_trades() -> pl.DataFrame:
    """2024-01-01 .. 2024-01-04 05:00, one trade every 7 s, except a quiet 2024-01-02
    09:00-13:00 (so a 4h bar has no trades and must be absent)."""
    ts = list(range(to_ns("2024-01-01"), to_ns("2024-01-04T05:00"), 7 * NS_PER_S))
    ts = [t for t in ts if not to_ns("2024-01-02T08:00") <= t < to_ns("2024-01-02T12:00")]
    n = len(ts)
    return pl.DataFrame(
        {
            "ts": ts,
            "trade_id": [str(10_000_000 + i) for i in range(n)],
            "price": [40_000 + (i * 37) % 1_000 / 10 for i in range(n)],
            "amount": [0.001 + (i % 13) / 1_000 for i in range(n)],
            "side": ["sell" if i % 3 == 0 else "buy" for i in range(n)],
        }
    )


def expected_bars(trades: pl.DataFrame, every: str, start: str, end: str) -> pl.DataFrame:
    bars = (
        trades.sort("ts", "trade_id")
        .with_columns(pl.from_epoch("ts", time_unit="ns").alias("t"))
        .group_by_dynamic("t", every=every)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("amount").sum().alias("volume"),
            (pl.col("price") * pl.col("amount")).sum().alias("quote_volume"),
            pl.len().cast(pl.Int64).alias("trades"),
        )
        .with_columns(pl.col("t").dt.epoch("ns").alias("ts"))
        .drop("t")
        .select("ts", "open", "high", "low", "close", "volume", "quote_volume", "trades")
    )
    return bars.filter((pl.col("ts") >= to_ns(start)) & (pl.col("ts") < to_ns(end)))


def test_derived_asset_store_equals_candles_from_the_truth_trades(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path, NO_SERVER, data_types=["trades"], spans=[],
                           derive=["4h", "1d"])
    derived = [s for s in catalog.datasets if s.derive_from is not None]
    assert [str(s.key) for s in derived] == ["binance BTC/USDT ohlc 4h",
                                             "binance BTC/USDT ohlc 1d"]
    store = Store(tmp_path)
    trades = truth_trades()
    store.record_coverage(TRADES, to_ns("2024-01-01"), to_ns("2024-01-04T05:00"))
    store.write(TRADES, trades)
    for spec, every in zip(derived, ["4h", "1d"], strict=True):
        result = materialize(
            [build_dataset_asset(spec), build_dataset_checks(spec)],
            resources=dccd_resources(str(catalog.store_root)),
            instance=DagsterInstance.ephemeral(),
            tags={RANGE_START: "2024-01-01", RANGE_END: "2024-01-04"},
        )
        assert result.success
        stored = store.read(spec.key)
        # the 2024-01-04 bars: the 00:00 4h bar is whole; 04:00 (trades end 05:00) and
        # the day bar are not covered -> absent
        end = "2024-01-04T04:00" if every == "4h" else "2024-01-04"
        truth = expected_bars(trades, every, "2024-01-01", end)
        assert_frame_equal(stored, truth, check_exact=False, rel_tol=1e-12)
        if every == "4h":
            assert to_ns("2024-01-02T08:00") not in stored["ts"].to_list()
            assert stored.height == 3 * 6 - 1 + 1
        mats = result.asset_materializations_for_node(f"derive_{spec.key.job_name}")
        assert len(mats) == 4
        meta = {k: v.value for k, v in mats[-1].metadata.items()}
        assert meta["derived_from"] == "binance/trades/btc_usdt"
        assert meta["trades_read"] == trades.filter(pl.col("ts") < to_ns(end)).height
        assert meta["uncovered"] and meta["uncovered"][0].startswith("2024-01-04T0")
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks), checks


def test_definitions_wire_the_derived_asset_after_the_trades(tmp_path: Path) -> None:
    from dccd_pipelines.definitions import build_definitions

    catalog = make_catalog(tmp_path, NO_SERVER, data_types=["ohlc", "trades"], spans=["1m"],
                           derive=["4h"])
    repo = build_definitions(catalog).get_repository_def()
    key = AssetKey(["binance", "ohlc", "btc_usdt_4h"])
    assets_def = repo.assets_defs_by_key[key]
    assert set(assets_def.asset_deps[key]) == {AssetKey(["binance", "trades", "btc_usdt"])}
    assert assets_def.specs_by_key[key].tags["derived_from"] == "trades"
    assert repo.get_job("binance__ohlc__btc_usdt_4h") is not None
    assert "binance__ohlc__btc_usdt_4h__update" in {s.name for s in repo.schedule_defs}


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"data_types": ["ohlc"], "spans": ["1m"], "derive": ["4h"]},
         "derive: candles are derived from this dataset's trades; add trades to data_types"),
        ({"data_types": ["ohlc", "trades"], "spans": ["1h"], "derive": ["1h"]},
         "derive[0]: 1h candles are both fetched (spans) and derived"),
        ({"data_types": ["trades"], "spans": [], "derive": ["7m"]}, "derive[0]: invalid span"),
    ],
)
def test_catalog_refuses_bad_derive(tmp_path: Path, dataset: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"datasets\[0\]\." + re.escape(message)):
        make_catalog(tmp_path, NO_SERVER, **dataset)


def test_the_short_history_hint_names_the_catalog_key_that_works(tmp_path: Path) -> None:
    from dccd_pipelines.catalog import parse_catalog

    ds = {"exchange": "kraken", "symbols": ["BTC/USD"], "start": "2020-01-01"}
    with pytest.raises(ConfigError, match=r"keeps only the last 720 1h candles.*`derive:`"):
        parse_catalog({"datasets": [{**ds, "data_types": ["ohlc"], "spans": ["1h"]}]}, env={})
    catalog = parse_catalog({"datasets": [{**ds, "data_types": ["trades"], "derive": ["1h"]}]},
                            env={})
    assert [s.key.name for s in catalog.datasets] == ["btc_usd", "btc_usd_1h"]
    assert catalog.datasets[1].derive_from == catalog.datasets[0].key
