"""Dataset assets on an ephemeral instance against the fake Binance: store == truth."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_DAY, DatasetKey, to_ns
from dccd_core.storage import Store
from dccd_pipelines.assets import build_dataset_asset, freshness_policy
from dccd_pipelines.execution import ProgressLog, partition_window
from dccd_pipelines.resources import dccd_resources
from tests.fakes.binance import FakeBinance

from .conftest import make_catalog

KEY = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def run(root: Path, origin: str, instance: DagsterInstance | None = None, **kwargs):
    catalog = make_catalog(root, origin)
    spec = catalog.datasets[0]
    return materialize(
        [build_dataset_asset(spec)],
        resources=dccd_resources(str(catalog.store_root)),
        instance=instance or DagsterInstance.ephemeral(),
        **kwargs,
    )


def meta(result) -> dict:
    mat = result.asset_materializations_for_node("fetch_binance__ohlc__btc_usdt_1m")[-1]
    return {k: v.value for k, v in mat.metadata.items()}


def test_single_partition_store_equals_truth(
    tmp_path: Path, binance_origin: str, fake_binance: FakeBinance
) -> None:
    result = run(tmp_path, binance_origin, partition_key="2024-01-10")
    assert result.success
    start, end = to_ns("2024-01-10"), to_ns("2024-01-11")
    truth = fake_binance.truth_candles(start, end)
    stored = Store(tmp_path).read(KEY, start, end)
    assert_frame_equal(stored, truth, check_dtypes=False)
    m = meta(result)
    assert m["dagster/row_count"] == truth.height == m["row_count"]
    assert m["run_rows_new"] == truth.height
    assert m["run_rows_fetched"] == truth.height
    assert m["run_requests"] >= 2
    assert m["run_partitions"] == "2024-01-10 (1 day(s))"
    assert m["first_ts"] == "2024-01-10T00:00:00Z"
    assert m["window_end"] == "2024-01-11T00:00:00Z"
    assert m["holes"] == 0
    assert m["path"].endswith("ohlc/exchange=binance/symbol=BTC-USDT/span=1m")
    assert m["preview"].count("\n") == 6  # header, rule and the last 5 rows
    assert m["run_files_written"] == 1
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), checks


def test_sixty_day_range_in_one_run_is_idempotent(
    tmp_path: Path, binance_origin: str, fake_binance: FakeBinance
) -> None:
    tags = {RANGE_START: "2024-01-01", RANGE_END: "2024-02-29"}
    instance = DagsterInstance.ephemeral()
    first = run(tmp_path, binance_origin, instance=instance, tags=tags)
    assert first.success
    messages = [e.user_message for e in instance.all_logs(first.run_id)]
    progress = [m for m in messages if "windows " in m and "rows/s" in m]
    assert progress and "covered until" in progress[-1] and "ETA" in progress[-1]
    # one run, one step, one materialization event per partition of the range
    mats = first.asset_materializations_for_node("fetch_binance__ohlc__btc_usdt_1m")
    assert len(mats) == 60 and mats[0].partition == "2024-01-01"
    start, end = to_ns("2024-01-01"), to_ns("2024-03-01")
    truth = fake_binance.truth_candles(start, end)
    store = Store(tmp_path)
    assert_frame_equal(store.read(KEY, start, end), truth, check_dtypes=False)
    rows_new = meta(first)["run_rows_new"]
    assert rows_new == truth.height == 60 * 1440 - _holes(fake_binance, start, end)
    files = sorted(p.name for p in (tmp_path / "ohlc").rglob("*.parquet"))
    assert files == ["2024-01.parquet", "2024-02.parquet"]

    second = run(tmp_path, binance_origin, tags=tags)
    assert second.success
    assert meta(second)["run_rows_new"] == 0
    last_day = fake_binance.truth_candles(to_ns("2024-02-29"), end).height
    assert meta(second)["dagster/row_count"] == last_day  # the last partition's own rows
    assert_frame_equal(store.read(KEY, start, end), truth, check_dtypes=False)
    assert store.holes(KEY, start, end) == []


def _holes(fake: FakeBinance, start: int, end: int) -> int:
    return 60 * 1440 - fake.truth_candles(start, end).height


def test_definitions_from_catalog(tmp_path: Path, binance_origin: str) -> None:
    catalog = make_catalog(tmp_path, binance_origin, symbols=["BTC/USDT", "ETH/USDT"],
                           data_types=["ohlc", "trades"], spans=["1m", "1h"])
    from dccd_pipelines.definitions import build_definitions

    defs = build_definitions(catalog)
    repo = defs.get_repository_def()
    keys = {"/".join(k.path) for k in repo.assets_defs_by_key}
    assert keys == {
        "binance/ohlc/btc_usdt_1m", "binance/ohlc/eth_usdt_1m", "binance/ohlc/btc_usdt_1h",
        "binance/ohlc/eth_usdt_1h", "binance/trades/btc_usdt", "binance/trades/eth_usdt",
    }
    assets_def = repo.assets_defs_by_key[AssetKey(["binance", "ohlc", "btc_usdt_1m"])]
    node = assets_def.specs_by_key[AssetKey(["binance", "ohlc", "btc_usdt_1m"])]
    assert node.group_name == "binance"
    assert node.kinds == {"parquet", "polars"}
    assert node.tags["exchange"] == "binance" and node.tags["data_type"] == "ohlc"
    assert assets_def.backfill_policy is not None
    assert assets_def.partitions_def is not None
    assert assets_def.partitions_def.get_first_partition_key() == "2024-01-01"
    assert assets_def.op.pool == "dccd_binance"
    assert node.freshness_policy is not None
    job = repo.get_job("binance__ohlc__btc_usdt_1m")
    assert job is not None
    assert len(repo.schedule_defs) == 6
    # candles 4 checks, trades 3, each + archives_verified (Binance publishes both)
    assert len(repo.asset_graph.asset_check_keys) == 4 * 5 + 2 * 4


def test_job_runs_a_partition(tmp_path: Path, binance_origin: str, fake_binance) -> None:
    from dccd_pipelines.definitions import build_definitions

    defs = build_definitions(make_catalog(tmp_path, binance_origin))
    job = defs.resolve_job_def("binance__ohlc__btc_usdt_1m")
    instance = DagsterInstance.ephemeral()
    result = job.execute_in_process(partition_key="2024-01-05", instance=instance)
    assert result.success
    start, end = to_ns("2024-01-05"), to_ns("2024-01-06")
    assert_frame_equal(Store(tmp_path).read(KEY, start, end),
                       fake_binance.truth_candles(start, end), check_dtypes=False)


def test_today_partition_ends_now() -> None:
    now = to_ns("2024-03-01T12:34:56Z")
    assert partition_window("2024-02-28", "2024-03-01", now) == (to_ns("2024-02-28"), now)
    assert partition_window("2024-02-28", "2024-02-28", now) == (
        to_ns("2024-02-28"), to_ns("2024-02-28") + NS_PER_DAY)
    with pytest.raises(ValueError, match="future"):
        partition_window("2024-03-02", "2024-03-02", now)


def test_progress_log_at_most_and_at_least_every_interval() -> None:
    lines: list[str] = []
    clock = [0.0]
    log = ProgressLog(lines.append, label="x", interval_s=10.0, clock=lambda: clock[0])

    class P:
        windows_done, windows_total, covered_until_ts = 3, 10, to_ns("2024-01-02")
        rows_per_s, eta_s, retries, rate_limit_pauses = 1234.0, 75.0, 2, 1

    log(P())
    clock[0] = 5.0
    log(P())
    assert len(lines) == 1
    assert lines[0] == ("x: windows 3/10 (30.0%), covered until 2024-01-02T00:00:00Z, "
                        "1,234 rows/s, ETA 1m15s, retries 2, rate-limit pauses 1")
    clock[0] = 10.5
    log(P())
    assert len(lines) == 2


def test_freshness_from_cadence(tmp_path: Path) -> None:
    catalog = make_catalog(tmp_path, "http://127.0.0.1:9")
    policy = freshness_policy(catalog.datasets[0])
    assert policy is not None
    assert policy.warn_window.to_timedelta().total_seconds() == 30 * 60
    assert policy.fail_window.to_timedelta().total_seconds() == 60 * 60


def test_io_manager_loads_a_partition_lazily(tmp_path: Path, binance_origin: str) -> None:
    from dagster import AssetIn, asset

    catalog = make_catalog(tmp_path, binance_origin)
    spec = catalog.datasets[0]
    upstream = build_dataset_asset(spec)
    seen: dict[str, int] = {}

    @asset(
        partitions_def=upstream.partitions_def,
        ins={"candles": AssetIn(key=AssetKey(KEY.asset_key_path))},
    )
    def closes(candles: pl.LazyFrame) -> None:
        seen["rows"] = candles.select(pl.len()).collect().item()

    result = materialize(
        [upstream, closes],
        resources=dccd_resources(str(catalog.store_root)),
        instance=DagsterInstance.ephemeral(),
        partition_key="2024-01-03",
    )
    assert result.success
    assert 1300 < seen["rows"] <= 1440


def test_range_run_gives_each_day_its_own_metadata(
    tmp_path: Path, binance_origin: str, fake_binance: FakeBinance
) -> None:
    """A 3-day range in one run: each partition's latest materialization carries that
    day's own rows, first/last ts and holes (not the range's), today's partial day
    included, and the candle still open is not a hole."""
    from datetime import UTC, datetime, timedelta

    from dagster import AssetRecordsFilter

    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    instance = DagsterInstance.ephemeral()
    result = run(tmp_path, binance_origin, instance=instance,
                 tags={RANGE_START: days[0], RANGE_END: days[-1]})
    assert result.success
    store = Store(tmp_path)
    counts = []
    for day in days:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(KEY.asset_key_path), asset_partitions=[day]),
            limit=1,
        ).records
        mat = records[0].asset_materialization
        assert mat is not None and mat.partition == day
        m = {k: v.value for k, v in mat.metadata.items()}
        stored = store.read(KEY, to_ns(day), to_ns(day) + NS_PER_DAY)
        assert m["dagster/row_count"] == m["row_count"] == stored.height, day
        if stored.height:  # (today has no closed bar in its first minute)
            assert m["first_ts"].startswith(day) and m["last_ts"].startswith(day)
        assert m["window_start"] == f"{day}T00:00:00Z"
        assert m["holes"] == 0 and m["holes_first"] == [], (day, m["holes_first"])
        assert m["run_partitions"] == f"{days[0]}...{days[-1]} (3 day(s))"
        counts.append(stored.height)
    full = [fake_binance.truth_candles(to_ns(d), to_ns(d) + NS_PER_DAY).height for d in days[:2]]
    assert counts[:2] == full and all(1400 < n <= 1440 for n in full)
    assert counts[2] < 1440  # today: up to the last closed minute only


def test_run_metadata_never_counts_the_open_candle_as_a_hole(tmp_path: Path) -> None:
    """Today's partition ends now, a backfill stops at the open bar: no hole there; an
    earlier never-fetched stretch of the day still is one."""
    from dccd_core.domain import now_ns
    from dccd_pipelines.execution import summarize

    now = now_ns()
    minute = 60 * 10**9
    open_bar = now - now % minute
    day = now - now % NS_PER_DAY
    store = Store(tmp_path)
    if open_bar - day < 3 * minute:
        pytest.skip("too early in the UTC day for a closed hole before the open bar")
    store.record_coverage(KEY, day, day + minute)
    store.record_coverage(KEY, day + 2 * minute, open_bar)
    summary = summarize(None, store, KEY, day, now)
    assert summary.holes == ((day + minute, day + 2 * minute),)
    assert [d.holes for d in summary.days] == [((day + minute, day + 2 * minute),)]
