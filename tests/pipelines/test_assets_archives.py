"""A dataset's Dagster run archive-first (issue #12): the catalog's ``archive_url`` reaches
the backfill, the rows equal the truth, and the metadata says where they came from."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, materialize

from dccd_core.catalog import parse_catalog
from dccd_core.domain import DatasetKey, to_ns
from dccd_core.storage import Store
from dccd_pipelines.assets import build_dataset_asset
from dccd_pipelines.resources import dccd_resources
from tests.fakes.archives import FakeArchives
from tests.fakes.binance import FakeBinance
from tests.fakes.server import serve_in_thread

from .conftest import LISTING_MS, TODAY

KEY = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")


def _run(tmp_path: Path, rest: str, archive: str | None, archives: str = "auto"):
    exchange = {"rest_url": rest, **({"archive_url": archive} if archive else {})}
    catalog = parse_catalog(
        {"store": {"root": str(tmp_path)}, "exchanges": {"binance": exchange},
         "datasets": [{"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["ohlc"],
                       "spans": ["1m"], "start": "2024-01-01", "archives": archives}]},
        path=tmp_path / "catalog.yaml", env={}, today=TODAY,
    )
    result = materialize(
        [build_dataset_asset(catalog.datasets[0])],
        resources=dccd_resources(str(catalog.store_root)),
        instance=DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": "2024-01-02",
              "dagster/asset_partition_range_end": "2024-01-04"},
    )
    assert result.success
    mat = result.asset_materializations_for_node("fetch_binance__ohlc__btc_usdt_1m")[-1]
    return {k: v.value for k, v in mat.metadata.items()}


def test_range_run_reads_daily_files_and_says_so(tmp_path: Path) -> None:
    fake = FakeBinance.default(listing_ms=LISTING_MS)
    archives = FakeArchives(binance=fake)
    with serve_in_thread(fake.app) as rest, serve_in_thread(archives.app) as archive:
        meta = _run(tmp_path, rest, archive)
    start, end = to_ns("2024-01-02"), to_ns("2024-01-05")
    stored = Store(tmp_path).read(KEY, start, end)
    truth = fake.truth_candles(start, end, "1m")
    assert stored.get_column("ts").to_list() == truth.get_column("ts").to_list()
    assert stored.get_column("close").to_list() == truth.get_column("close").to_list()
    assert meta["run_archive_files"] == "3/3"
    assert meta["run_archive_rows"] == truth.height and meta["run_rest_rows"] == 0
    # (the archives_verified check may sample a REST page; the backfill fetched none)


def test_a_rest_only_catalog_keeps_its_history_on_that_origin(tmp_path: Path) -> None:
    """No archive_url next to a moved REST origin: every row over REST, no archive keys."""
    fake = FakeBinance.default(listing_ms=LISTING_MS)
    with serve_in_thread(fake.app) as rest:
        meta = _run(tmp_path, rest, None)
    assert "run_archive_files" not in meta
    assert meta["run_rows_fetched"] > 4000 and fake.data_requests > 0
