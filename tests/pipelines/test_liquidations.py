"""Liquidations in the catalog (stream only, perpetuals only), in Dagster (an asset the
stream reports, nothing to materialize) and in the stream checks: a reconnect gap shows
in the Dagster ``no_holes`` check, never green as complete."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dccd_core.domain import (
    NO_REST_HISTORY,
    ConfigError,
    DatasetKey,
    NoCapability,
    iso_date,
    now_ns,
)
from dccd_core.storage import Store
from dccd_pipelines.catalog import parse_catalog
from dccd_pipelines.checks import stream_check_evaluations
from tests.fakes.kit import stream_on
from tests.fakes.liquidations_ws import LiquidationsFake

TODAY = date(2024, 6, 1)
PERP = "BTC/USDT:USDT"
KEY = DatasetKey.of("binance", PERP, "liquidations")


def _dataset(**fields: Any) -> dict[str, Any]:
    return {"datasets": [{"exchange": "binance", "start": "2024-01-01", **fields}]}


def test_streamed_liquidations_are_a_dataset() -> None:
    raw = _dataset(symbols=[PERP], data_types=["liquidations"], stream=["liquidations"],
                   update="*/15 * * * *")  # fmt: skip
    (spec,) = parse_catalog(raw, env={}, today=TODAY).datasets
    assert spec.key == KEY and spec.stream and spec.update_cron is None


def test_stream_entry_alone_adds_the_dataset() -> None:
    raw = _dataset(symbols=[PERP], data_types=["funding"], stream=["liquidations"])
    keys = {s.key for s in parse_catalog(raw, env={}, today=TODAY).datasets}
    assert KEY in keys and len(keys) == 2


def test_liquidations_as_a_backfill_refused() -> None:
    raw = _dataset(symbols=[PERP], data_types=["liquidations"])
    with pytest.raises(ConfigError, match=NO_REST_HISTORY) as info:
        parse_catalog(raw, env={}, today=TODAY)
    assert "datasets[0].data_types[0]" in str(info.value)


def test_spot_symbol_refused() -> None:
    raw = _dataset(symbols=["BTC/USDT"], data_types=["trades"], stream=["liquidations"])
    with pytest.raises(ConfigError, match=r"liquidations needs a perpetual symbol like "
                       r"BTC/USDT:USDT, not the spot symbol BTC/USDT"):  # fmt: skip
        parse_catalog(raw, env={}, today=TODAY)


def test_exchange_without_the_stream_refused() -> None:
    raw = _dataset(exchange="kraken", symbols=["BTC/USD:USD"], data_types=["ohlc"],
                   spans=["1h"], stream=["liquidations"])  # fmt: skip
    with pytest.raises(ConfigError, match="kraken has no live liquidations stream"):
        parse_catalog(raw, env={}, today=TODAY)


async def _holes(tmp_path: Path, drop_every: int) -> tuple[int, int]:
    fake = LiquidationsFake(drop_every=drop_every)
    store = Store(tmp_path)
    final = await stream_on(fake, "binance", [PERP], "liquidations", store=store,
                            flush_interval_s=0.2, max_runtime_s=2.0)  # fmt: skip
    (check,) = [
        e
        for e in stream_check_evaluations(str(tmp_path), KEY, iso_date(now_ns()))
        if e.check_name == "no_holes"
    ]
    return final.unhealed_gaps, int(check.metadata["offending"].value) if not check.passed else 0


async def test_reconnect_gap_fails_the_stream_check(tmp_path: Path) -> None:
    unhealed, holes = await _holes(tmp_path / "drops", drop_every=60)
    assert unhealed >= 2 and holes >= unhealed  # each gap a hole (and the day before the start)
    unhealed, holes = await _holes(tmp_path / "steady", drop_every=0)
    assert unhealed == 0 and holes <= 1  # at most the day before the stream started


def _definitions(root: Path) -> Any:
    from dccd_pipelines.definitions import build_definitions

    raw = {"store": {"root": str(root)},
           **_dataset(symbols=[PERP], data_types=["funding"], stream=["liquidations"],
                      update="0 * * * *")}  # fmt: skip
    return build_definitions(parse_catalog(raw, env={}, today=TODAY))


def test_the_asset_is_the_streams_and_cannot_be_materialized(tmp_path: Path) -> None:
    """No materialize action, backfill, job or schedule that could only fail: the asset
    is reported by the stream job, its checks have an op of their own."""
    from dagster import AssetKey, DagsterInvalidDefinitionError

    from dccd_pipelines.assets import build_dataset_asset

    defs = _definitions(tmp_path)
    key = AssetKey(KEY.asset_key_path)
    node = defs.resolve_asset_graph().get(key)
    assert not node.is_materializable and not node.is_executable
    assert node.partitions_def is not None  # the stream's day partitions show on it
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert KEY.job_name not in jobs and "binance__liquidations__stream" in jobs
    assert "binance__funding__btc_usdt_usdt" in jobs  # the other dataset keeps its own
    schedules = {s.name for s in defs.schedules or []}
    assert schedules == {"binance__funding__btc_usdt_usdt__update"}
    # what `dagster asset materialize --select binance/liquidations/...` asks for
    with pytest.raises(DagsterInvalidDefinitionError, match="executable asset keys"):
        defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={key})
    with pytest.raises(NoCapability, match=NO_REST_HISTORY):
        build_dataset_asset(parse_catalog(_dataset(symbols=[PERP], stream=["liquidations"],
                                                   data_types=["funding"]),
                                          env={}, today=TODAY).datasets[1])  # fmt: skip


def test_its_checks_run_on_what_the_stream_stored(tmp_path: Path) -> None:
    """The checks' op audits the streamed rows: a reconnect gap fails no_holes."""
    import asyncio

    from dagster import AssetKey, AssetSelection, DagsterInstance, Definitions, define_asset_job

    fake = LiquidationsFake(drop_every=60)
    final = asyncio.run(stream_on(fake, "binance", [PERP], "liquidations",
                                  store=Store(tmp_path), flush_interval_s=0.2,
                                  max_runtime_s=1.5))  # fmt: skip
    assert final.unhealed_gaps >= 1
    selection = AssetSelection.checks_for_assets(AssetKey(KEY.asset_key_path))
    audit = define_asset_job("audit", selection=selection)
    defs = Definitions.merge(_definitions(tmp_path), Definitions(jobs=[audit]))
    result = defs.resolve_job_def("audit").execute_in_process(instance=DagsterInstance.ephemeral())
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["no_duplicates"] and checks["sorted_in_period"]
    assert checks["no_holes"] is False
