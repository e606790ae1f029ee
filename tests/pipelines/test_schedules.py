"""Update schedules: a due cron requests the latest partition (and yesterday's tail at midnight)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from dagster import DagsterInstance, DefaultScheduleStatus, Definitions, build_schedule_context

from dccd_core.catalog import DatasetSpec, ExchangeSettings
from dccd_core.domain import DatasetKey
from dccd_pipelines.assets import build_dataset_asset
from dccd_pipelines.resources import dccd_resources
from dccd_pipelines.schedules import build_dataset_job, build_update_schedule, update_days

SPEC = DatasetSpec(
    key=DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m"),
    start=date(2024, 1, 1),
    update_cron="*/15 * * * *",
    exchange=ExchangeSettings("binance"),
)


def evaluate(at: datetime):
    job = build_dataset_job(SPEC)
    schedule = build_update_schedule(SPEC, job)
    defs = Definitions(
        assets=[build_dataset_asset(SPEC)],
        jobs=[job],
        schedules=[schedule],
        resources=dccd_resources("/nonexistent"),
    )
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance,
            scheduled_execution_time=at,
            repository_def=defs.get_repository_def(),
        )
        return schedule.evaluate_tick(context)


def test_schedule_is_running_by_default_and_named_after_the_job() -> None:
    job = build_dataset_job(SPEC)
    schedule = build_update_schedule(SPEC, job)
    assert job.name == "binance__ohlc__btc_usdt_1m"
    assert schedule.name == "binance__ohlc__btc_usdt_1m__update"
    assert schedule.default_status is DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "*/15 * * * *"


def test_due_tick_requests_the_latest_partition() -> None:
    data = evaluate(datetime(2024, 3, 1, 12, 15, tzinfo=UTC))
    assert data.skip_message is None
    [request] = data.run_requests
    assert request.partition_key == "2024-03-01"
    assert request.tags["dccd/trigger"] == "update"


def test_first_tick_after_midnight_also_closes_yesterday() -> None:
    data = evaluate(datetime(2024, 3, 1, 0, 0, tzinfo=UTC))
    [request] = data.run_requests
    assert request.partition_key is None
    assert request.tags["dagster/asset_partition_range_start"] == "2024-02-29"
    assert request.tags["dagster/asset_partition_range_end"] == "2024-03-01"


def test_update_days() -> None:
    assert update_days("*/15 * * * *", datetime(2024, 3, 1, 0, 15, tzinfo=UTC), SPEC.start) == (
        date(2024, 3, 1),
        date(2024, 3, 1),
    )
    daily = update_days("0 6 * * *", datetime(2024, 3, 1, 6, tzinfo=UTC), SPEC.start)
    assert daily == (date(2024, 2, 29), date(2024, 3, 1))
    first = update_days("0 0 * * *", datetime(2024, 1, 1, tzinfo=UTC), SPEC.start)
    assert first == (date(2024, 1, 1), date(2024, 1, 1))


def test_before_the_start_nothing_is_requested() -> None:
    data = evaluate(datetime(2023, 12, 31, 12, 0, tzinfo=UTC))
    assert not data.run_requests


def test_pool_limits_follow_the_catalog(tmp_path) -> None:
    from dagster import build_sensor_context

    from dccd_pipelines.catalog import parse_catalog
    from dccd_pipelines.pools import build_pool_sensor

    raw = {
        "exchanges": {"binance": {"pool_limit": 1}},
        "datasets": [
            {"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["trades"],
             "start": "2024-01-01"},
            {"exchange": "kraken", "symbols": ["BTC/USD"], "data_types": ["trades"],
             "start": "2024-01-01"},
        ],
    }
    sensor = build_pool_sensor(parse_catalog(raw, env={}, today=date(2024, 6, 1)))
    with DagsterInstance.ephemeral() as instance:
        data = sensor.evaluate_tick(build_sensor_context(instance=instance))
        assert "dccd_binance=1" in (data.skip_message or "")
        storage = instance.event_log_storage
        assert storage.get_concurrency_info("dccd_binance").slot_count == 1
        assert storage.get_concurrency_info("dccd_kraken").slot_count == 2
        again = sensor.evaluate_tick(build_sensor_context(instance=instance))
        assert "nothing to change" in (again.skip_message or "")
        assert "WARNING" not in (again.skip_message or "")  # in memory: one process


def test_the_pool_sensor_warns_of_dagsters_racy_slot_claims(tmp_path, monkeypatch) -> None:
    """An instance still on Dagster's own SQLite storage (an older dagster.yaml) is told
    that its pools may admit two runs for one slot; the shipped one is not."""
    import shutil

    from dagster import build_sensor_context

    from dccd_pipelines.catalog import parse_catalog
    from dccd_pipelines.pools import build_pool_sensor

    raw = {"datasets": [{"exchange": "binance", "symbols": ["BTC/USDT"],
                         "data_types": ["trades"], "start": "2024-01-01"}]}
    sensor = build_pool_sensor(parse_catalog(raw, env={}, today=date(2024, 6, 1)))
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")  # undone: the storage sets it
    messages = {}
    for name, shipped in (("stock", False), ("shipped", True)):
        home = tmp_path / name
        home.mkdir()
        if shipped:
            shutil.copy(Path(__file__).parents[2] / "dagster.yaml", home / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with DagsterInstance.from_config(str(home)) as instance:
            data = sensor.evaluate_tick(build_sensor_context(instance=instance))
            messages[name] = data.skip_message or ""
    assert "WARNING" in messages["stock"] and "SqliteEventLogStorage" in messages["stock"]
    assert "dccd's dagster.yaml" in messages["stock"]
    assert "WARNING" not in messages["shipped"]
