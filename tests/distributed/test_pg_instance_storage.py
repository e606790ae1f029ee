"""The PostgreSQL instance storage of ``deploy/dagster.yaml`` claims pool slots
atomically: dagster-postgres' own claim gave one slot to two processes in 42 of 200
rounds here (``dccd_pipelines.instance_storage_pg``). A real PostgreSQL (pgserver)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from dccd_pipelines.instance_storage_pg import DccdPostgresEventLogStorage
from tests.pipelines.test_instance_storage import race_two_claimers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


def test_two_processes_claiming_at_once_never_share_a_slot(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    url = postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    monkeypatch.setenv("DCCD_DAGSTER_PG_URL", url)  # inherited by the claiming processes
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = DagsterInstance.from_config(str(home))
    assert isinstance(instance.event_log_storage, DccdPostgresEventLogStorage)
    race_two_claimers(home)
