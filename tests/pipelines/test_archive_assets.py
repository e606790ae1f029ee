"""A dataset asset with archives on an ephemeral instance: the partition comes from the
fake data.binance.vision host (the REST fake serves the same truth), the metadata says
how much came from archives and from REST, and ``archives_verified`` passes, then
fails once the exchange replaces the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance, materialize
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_MS, DatasetKey, to_ns
from dccd_core.storage import Store
from dccd_pipelines.assets import build_dataset_asset
from dccd_pipelines.catalog import parse_catalog
from dccd_pipelines.resources import dccd_resources
from tests.fakes.archives import FakeArchives
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.server import serve_in_thread

from .conftest import TODAY

KEY = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
DAY = "2024-03-10"
FILE = "BTCUSDT-1m-2024-03-10.zip"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeBinance, FakeArchives, str, str]]:
    market = MarketData(7, to_ns("2024-01-01") // NS_PER_MS)
    binance = FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)
    archives = FakeArchives(binance=binance, missing={"BTCUSDT-1m-2024-03-11.zip"})
    with serve_in_thread(binance.app) as rest, serve_in_thread(archives.app) as origin:
        yield binance, archives, rest, origin


def _run(
    root: Path,
    rest: str,
    origin: str,
    instance: DagsterInstance | None = None,
    archives: str = "auto",
    **kwargs: Any,
) -> Any:
    raw = {
        "store": {"root": str(root)},
        "exchanges": {"binance": {"rest_url": rest, "archive_url": origin}},
        "datasets": [{"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["ohlc"],
                      "spans": ["1m"], "start": "2024-01-01", "archives": archives}],
    }
    catalog = parse_catalog(raw, path=root / "catalog.yaml", env={}, today=TODAY)
    [spec] = catalog.datasets
    return materialize(
        [build_dataset_asset(spec)],
        resources=dccd_resources(str(catalog.store_root)),
        instance=instance or DagsterInstance.ephemeral(),
        **kwargs,
    )


def test_partition_from_archives_with_metadata_and_verification(
    tmp_path: Path, fakes: tuple[FakeBinance, FakeArchives, str, str]
) -> None:
    binance, archives, rest, origin = fakes
    instance = DagsterInstance.ephemeral()
    result = _run(tmp_path, rest, origin, instance, partition_key=DAY)
    assert result.success
    start, end = to_ns(DAY), to_ns("2024-03-11")
    truth = binance.truth_candles(start, end)
    assert_frame_equal(Store(tmp_path).read(KEY, start, end), truth, check_dtypes=False)
    mat = result.asset_materializations_for_node(f"fetch_{KEY.job_name}")[-1]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["run_archive_files"] == "1/1"
    assert meta["run_archive_rows"] == truth.height and meta["run_rest_rows"] == 0
    assert meta["run_archive_fallbacks"] == 0
    assert meta["run_requests"] == 0  # the whole day from the archive file
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    verified = checks["archives_verified"]
    assert verified.passed, verified.description
    assert verified.metadata["archive_files"].value == 1
    assert verified.metadata["checksums_rechecked"].value == 1
    assert (
        verified.metadata["sample_stored_rows"].value
        == verified.metadata["sample_rest_rows"].value
        > 0
    )
    assert binance.requests["klines"] == 1  # the check's REST sample: one page
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("% of the time range, archive files 1/1 (" in m for m in logs)  # progress

    archives.replace(FILE)  # re-published with other content: the check must see it
    # the checks alone: over the whole dataset
    checked = _run(tmp_path, rest, origin, selection=AssetSelection.all_asset_checks())
    [again] = [c for c in checked.get_asset_check_evaluations()
               if c.check_name == "archives_verified"]
    assert not again.passed and again.severity is AssetCheckSeverity.ERROR
    assert again.metadata["changed_files"].value[0]["file"] == FILE
    assert "changed since ingestion" in (again.description or "")


def test_a_missing_file_falls_back_to_rest_and_says_so(
    tmp_path: Path, fakes: tuple[FakeBinance, FakeArchives, str, str]
) -> None:
    binance, _, rest, origin = fakes
    result = _run(tmp_path, rest, origin, partition_key="2024-03-11")
    assert result.success
    start, end = to_ns("2024-03-11"), to_ns("2024-03-12")
    truth = binance.truth_candles(start, end)
    assert_frame_equal(Store(tmp_path).read(KEY, start, end), truth, check_dtypes=False)
    mat = result.asset_materializations_for_node(f"fetch_{KEY.job_name}")[-1]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["run_archive_files"] == "0/1" and meta["run_rest_rows"] == truth.height
    assert meta["run_archive_fallbacks"] == 1
    assert meta["run_archive_fallbacks_first"][0].startswith(
        "BTCUSDT-1m-2024-03-11.zip: missing"
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["archives_verified"].passed
    assert checks["archives_verified"].description == (
        "no archive files ingested in this window: nothing to verify"
    )


def test_only_mode_says_the_run_is_not_complete(
    tmp_path: Path, fakes: tuple[FakeBinance, FakeArchives, str, str]
) -> None:
    binance, _, rest, origin = fakes
    result = _run(tmp_path, rest, origin, archives="only", tags={
        "dagster/asset_partition_range_start": "2024-03-10",
        "dagster/asset_partition_range_end": "2024-03-12",
    })
    assert result.success
    assert binance.requests["klines"] == 1  # the archives_verified sample only: no backfill REST
    mat = result.asset_materializations_for_node(f"fetch_{KEY.job_name}")[-1]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["run_archive_files"] == "2/3" and meta["run_rest_rows"] == 0
    assert meta["run_uncovered"] == ["2024-03-11T00:00:00Z -> 2024-03-12T00:00:00Z"]
    [holes] = [c for c in result.get_asset_check_evaluations() if c.check_name == "no_holes"]
    assert not holes.passed  # the missing day is a hole the check reports
    assert holes.metadata["first_offending"].value == [
        {"start": "2024-03-11T00:00:00Z", "end": "2024-03-12T00:00:00Z"}
    ]
    days = {m.partition: m.metadata for m in result.asset_materializations_for_node(
        f"fetch_{KEY.job_name}")}
    assert days["2024-03-11"]["holes"].value == 1 and days["2024-03-10"]["holes"].value == 0
