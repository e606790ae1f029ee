"""``dccd status``'s stream column read from a real Dagster instance at $DAGSTER_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from dccd_cli import cli
from dccd_pipelines.streams import STREAM_TAG

CATALOG = """\
store:
  root: {lake}
datasets:
  - exchange: binance
    symbols: [BTC/USDT]
    data_types: [trades, ohlc]
    spans: [1m]
    start: 2024-01-01
    stream: [trades]
"""


def _status(catalog: Path) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["status", "--catalog", str(catalog), "--format", "json"])
    assert result.exit_code == 1, result.output  # nothing stored: missing
    data = json.loads(result.stdout)
    return {d["dataset"]: d["stream"] for d in data["datasets"]}


def test_stream_column_from_the_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(CATALOG.format(lake=tmp_path / "lake"), encoding="utf-8")
    trades, candles = "binance BTC/USDT trades", "binance BTC/USDT ohlc 1m"

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert _status(catalog) == {trades: "unknown", candles: "-"}  # no instance: no guess

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert _status(catalog) == {trades: "unknown", candles: "-"}  # none there: not created
    assert list(home.iterdir()) == []

    (home / "dagster.yaml").write_text("", encoding="utf-8")
    with DagsterInstance.get() as instance:
        run = instance.add_run(
            DagsterRun(
                job_name="binance__trades__stream",
                tags={STREAM_TAG: "binance__trades__stream"},
                status=DagsterRunStatus.STARTED,
            )
        )
    assert _status(catalog) == {trades: "running", candles: "-"}

    with DagsterInstance.get() as instance:
        instance.report_run_canceled(run)
    assert _status(catalog) == {trades: "stopped", candles: "-"}
