"""The real Dagster CLI against the fake Binance on loopback (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from dccd_core.domain import DatasetKey, to_ns
from dccd_core.storage import Store
from tests.fakes.binance import FakeBinance

ROOT = Path(__file__).parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
KEY = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
CATALOG = """\
datasets:
  - exchange: binance
    symbols: [BTC/USDT]
    data_types: [ohlc]
    spans: [1m]
    start: 2024-01-01
    update: "*/15 * * * *"
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, binance_origin: str) -> dict[str, str]:
    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(CATALOG)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    return {
        **os.environ,
        "DCCD_CONFIG": str(catalog),
        "DCCD_DATA_PATH": str(tmp_path / "lake"),
        "DCCD_BINANCE_REST_URL": binance_origin,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(ROOT),
    }


def dagster(args: list[str], env: dict[str, str], timeout_s: float = 300):
    return subprocess.run(
        [DAGSTER, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
    )


def test_definitions_validate(env: dict[str, str]) -> None:
    done = dagster(["definitions", "validate", "-w", "workspace.yaml"], env)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("bad_unknown_exchange.yaml", ["unknown exchange 'binanse'"]),
        # issue 10: the same file/key/fix lines as `dccd validate`, every one of them
        ("bad_duplicate_key.yaml", ["datasets[0].start: written twice (lines 8 and 9)",
                                    "exchanges.binance.pool_limit: written twice"]),
        ("bad_invalid_date.yaml", ["datasets[0].start: '2024-02-30' is not a valid date"]),
    ],
)
def test_bad_catalog_fails_load_with_the_clear_message(
    env: dict[str, str], name: str, fragments: list[str]
) -> None:
    bad = ROOT / "tests" / "fixtures" / "catalogs" / name
    done = dagster(["definitions", "validate", "-w", "workspace.yaml"],
                   {**env, "DCCD_CONFIG": str(bad)})
    assert done.returncode != 0
    for fragment in fragments:
        assert fragment in done.stdout + done.stderr, done.stdout + done.stderr


def test_asset_materialize_partition_range(
    env: dict[str, str], tmp_path: Path, fake_binance: FakeBinance
) -> None:
    done = dagster(
        ["asset", "materialize", "-m", "dccd_pipelines.definitions",
         "--select", "binance/ohlc/btc_usdt_1m", "--partition-range", "2024-01-01...2024-01-31"],
        env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    start, end = to_ns("2024-01-01"), to_ns("2024-02-01")
    stored = Store(tmp_path / "lake").read(KEY, start, end)
    assert_frame_equal(stored, fake_binance.truth_candles(start, end), check_dtypes=False)


def test_job_launch_one_partition(
    env: dict[str, str], tmp_path: Path, fake_binance: FakeBinance
) -> None:
    from dagster import DagsterInstance, DagsterRunStatus

    home = Path(env["DAGSTER_HOME"])
    # Launch immediately (no daemon in this test): the default run coordinator.
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\ntelemetry:\n  enabled: false\n"
    )
    done = dagster(
        ["job", "launch", "-w", "workspace.yaml", "-j", "binance__ohlc__btc_usdt_1m",
         "--tags", json.dumps({"dagster/partition": "2024-01-02"})],
        env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    os.environ["DAGSTER_HOME"], saved = str(home), os.environ.get("DAGSTER_HOME")
    try:
        with DagsterInstance.get() as instance:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                [run] = instance.get_runs(limit=1)
                if run.is_finished:
                    break
                time.sleep(0.5)
            assert run.status is DagsterRunStatus.SUCCESS, run.status
            assert run.tags["dagster/partition"] == "2024-01-02"
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved
    start, end = to_ns("2024-01-02"), to_ns("2024-01-03")
    stored = Store(tmp_path / "lake").read(KEY, start, end)
    assert_frame_equal(stored, fake_binance.truth_candles(start, end), check_dtypes=False)
