"""Asset checks: pass on good data, fail with useful metadata on injected faults."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance, materialize

from dccd_core.catalog import DatasetSpec, ExchangeSettings
from dccd_core.domain import NS_PER_DAY, NS_PER_S, DatasetKey, to_ns
from dccd_core.storage import SegmentPolicy, Store
from dccd_core.storage.layout import list_period_files, period_path, segment_path
from dccd_pipelines.assets import build_dataset_asset
from dccd_pipelines.checks import audit_dataset, build_dataset_checks, check_names
from dccd_pipelines.resources import dccd_resources

KEY = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
DAY = to_ns("2024-01-01")


def candles(start_ts: int, n: int) -> pl.DataFrame:
    ts = [start_ts + i * 60 * NS_PER_S for i in range(n)]
    base = [100.0 + i for i in range(n)]
    return pl.DataFrame(
        {
            "ts": ts,
            "open": base,
            "high": [b + 2 for b in base],
            "low": [b - 2 for b in base],
            "close": [b + 1 for b in base],
            "volume": [1.0] * n,
            "quote_volume": [None] * n,
            "trades": [None] * n,
        },
        schema={"ts": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
                "close": pl.Float64, "volume": pl.Float64, "quote_volume": pl.Float64,
                "trades": pl.Int64},
    )


def spec(key: DatasetKey = KEY) -> DatasetSpec:
    return DatasetSpec(key=key, start=date(2024, 1, 1), exchange=ExchangeSettings(key.exchange))


def good_store(root: Path, key: DatasetKey = KEY) -> Store:
    store = Store(root)
    store.write(key, candles(DAY, 1440))
    store.record_coverage(key, DAY, DAY + NS_PER_DAY)
    return store


def inject(root: Path, frame: pl.DataFrame, key: DatasetKey = KEY) -> None:
    """Overwrite the period file behind the store's back (as a buggy writer would)."""
    path = period_path(root, key, "2024-01")
    frame.write_parquet(path)


def test_good_data_passes_every_check(tmp_path: Path) -> None:
    good_store(tmp_path)
    outcomes = audit_dataset(str(tmp_path), KEY, DAY, DAY + NS_PER_DAY)
    assert set(outcomes) == set(check_names(KEY))
    for outcome in outcomes.values():
        assert outcome.passed, outcome
    assert outcomes["no_duplicates"].rows_checked == 1440


def test_duplicates_fail_with_the_offending_rows(tmp_path: Path) -> None:
    good_store(tmp_path)
    frame = candles(DAY, 10)
    inject(tmp_path, pl.concat([frame, frame.slice(3, 2)]).sort("ts"))
    outcome = audit_dataset(str(tmp_path), KEY, None, None)["no_duplicates"]
    assert not outcome.passed
    assert outcome.bad == 4  # both copies of 2 keys
    assert outcome.examples[0]["ts"] == "2024-01-01T00:03:00Z"


def test_checks_see_segments_and_duplicates_across_them(tmp_path: Path) -> None:
    store = Store(tmp_path, segments=SegmentPolicy(min_base_rows=100, close_after_s=1e12))
    store.write(KEY, candles(DAY, 1000))
    store.write(KEY, candles(DAY + 1000 * 60 * NS_PER_S, 20))  # a segment
    assert [f.segment is not None for f in list_period_files(tmp_path, KEY)] == [False, True]
    store.record_coverage(KEY, DAY, DAY + 1020 * 60 * NS_PER_S)
    outcomes = audit_dataset(str(tmp_path), KEY, None, None)
    assert all(o.passed for o in outcomes.values()), outcomes
    assert outcomes["no_duplicates"].rows_checked == 1020
    # a foreign writer drops a segment repeating a stored candle: the check sees it
    candles(DAY + 5 * 60 * NS_PER_S, 1).write_parquet(segment_path(tmp_path, KEY, "2024-01", "zz"))
    outcome = audit_dataset(str(tmp_path), KEY, None, None)["no_duplicates"]
    assert outcome.bad == 2 and outcome.examples[0]["ts"] == "2024-01-01T00:05:00Z"


def test_unsorted_and_out_of_period_rows_fail(tmp_path: Path) -> None:
    good_store(tmp_path)
    frame = candles(DAY, 10)
    stray = candles(to_ns("2024-02-03"), 1)
    shuffled = pl.concat([frame.slice(5, 5), frame.slice(0, 5), stray])
    inject(tmp_path, shuffled)
    outcome = audit_dataset(str(tmp_path), KEY, None, None)["sorted_in_period"]
    assert not outcome.passed
    assert outcome.bad == 2  # the step back at row 5, and the February row
    shown = [e["ts"] for e in outcome.examples]
    assert "2024-01-01T00:00:00Z" in shown and "2024-02-03T00:00:00Z" in shown


def test_high_below_low_fails_ohlc_sanity(tmp_path: Path) -> None:
    good_store(tmp_path)
    frame = candles(DAY, 10).with_columns(
        pl.when(pl.col("ts") == DAY + 120 * NS_PER_S).then(50.0).otherwise(pl.col("high"))
        .alias("high")
    )
    inject(tmp_path, frame)
    outcome = audit_dataset(str(tmp_path), KEY, None, None)["ohlc_sanity"]
    assert not outcome.passed and outcome.bad == 1
    assert outcome.examples[0]["high"] == 50.0 and outcome.examples[0]["ts"].endswith("00:02:00Z")


def test_bitmex_open_outside_range_is_allowed(tmp_path: Path) -> None:
    key = DatasetKey.of("bitmex", "BTC/USD:BTC", "ohlc", "1m")
    frame = candles(DAY, 10).with_columns((pl.col("high") + 5).alias("open"))
    Store(tmp_path).write(key, frame)
    assert audit_dataset(str(tmp_path), key, None, None)["ohlc_sanity"].passed
    binance = candles(DAY, 10).with_columns((pl.col("high") + 5).alias("open"))
    Store(tmp_path).write(KEY, binance)
    assert not audit_dataset(str(tmp_path), KEY, None, None)["ohlc_sanity"].passed


def test_holes_against_coverage(tmp_path: Path) -> None:
    store = good_store(tmp_path)
    store.record_coverage(KEY, DAY + 2 * NS_PER_DAY, DAY + 3 * NS_PER_DAY)
    outcome = audit_dataset(str(tmp_path), KEY, DAY, DAY + 3 * NS_PER_DAY)["no_holes"]
    assert not outcome.passed and outcome.bad == 1
    assert outcome.examples == [{"start": "2024-01-02T00:00:00Z", "end": "2024-01-03T00:00:00Z"}]
    # Beyond the coverage frontier is "not fetched yet" (freshness), not a hole.
    tail = audit_dataset(str(tmp_path), KEY, DAY + 2 * NS_PER_DAY, DAY + 5 * NS_PER_DAY)
    assert tail["no_holes"].passed


def test_checks_run_in_dagster_with_severity_and_metadata(tmp_path: Path) -> None:
    good_store(tmp_path)
    frame = candles(DAY, 10)
    inject(tmp_path, pl.concat([frame, frame.slice(0, 1)]).sort("ts"))
    result = materialize(
        [build_dataset_asset(spec())],
        selection=AssetSelection.all_asset_checks(),
        resources=dccd_resources(str(tmp_path)),
        instance=DagsterInstance.ephemeral(),
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "no_duplicates", "sorted_in_period", "ohlc_sanity", "no_holes", "archives_verified"
    }  # Binance publishes 1m klines: the archive check too (no file ingested: it passes)
    assert evaluations["archives_verified"].passed
    dup = evaluations["no_duplicates"]
    assert not dup.passed and dup.severity is AssetCheckSeverity.ERROR
    assert dup.metadata["offending"].value == 2
    assert dup.metadata["first_offending"].value[0]["ts"] == "2024-01-01T00:00:00Z"
    assert evaluations["ohlc_sanity"].passed
    assert evaluations["no_holes"].severity is AssetCheckSeverity.WARN


@pytest.mark.parametrize("data_type", ["trades", "book"])
def test_check_sets_per_data_type(data_type: str) -> None:
    key = DatasetKey.of("binance", "BTC/USDT", data_type)
    names = check_names(key)
    assert "ohlc_sanity" not in names
    assert ("no_holes" in names) == (data_type == "trades")


def test_standalone_check_op_for_assets_without_embedded_checks(tmp_path: Path) -> None:
    from dagster import AssetSpec

    good_store(tmp_path)
    checks = build_dataset_checks(spec())
    result = materialize(
        [AssetSpec(KEY.asset_key_path), checks],
        resources=dccd_resources(str(tmp_path)),
        instance=DagsterInstance.ephemeral(),
        selection=AssetSelection.all_asset_checks(),
    )
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 5 and all(e.passed for e in evaluations)  # + archives_verified
