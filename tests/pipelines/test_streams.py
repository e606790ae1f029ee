"""Stream supervision against a real (temporary) Dagster instance and a fake Binance."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import polars as pl
from dagster import DagsterRun, DagsterRunStatus, RunRequest, SkipReason, build_sensor_context
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType
from dagster._core.test_utils import instance_for_test

from dccd_core.domain import DataType, Symbol
from dccd_core.storage import Store
from dccd_pipelines import streams
from dccd_pipelines.resources import STORE_KEY, DccdStore
from dccd_pipelines.streams import (
    STREAM_TAG,
    StreamSpec,
    build_stream_job,
    build_stream_sensor,
    decide_stream_run,
    supervisor_gone,
    write_heartbeat,
)
from tests.fakes.binance_ws import BinanceStreamFake
from tests.fakes.server import serve_in_thread

SPEC = StreamSpec("binance", DataType.TRADES, (Symbol.parse("BTC/USDT"),))


def _add_run(instance, status: DagsterRunStatus) -> DagsterRun:  # type: ignore[no-untyped-def]
    run = DagsterRun(job_name=SPEC.name, tags={STREAM_TAG: SPEC.name}, status=status)
    return instance.add_run(run)


def _turn_sensor_off(instance) -> None:  # type: ignore[no-untyped-def]
    origin = RemoteInstigatorOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("dccd"), "__repository__"),
        SPEC.sensor_name,
    )
    instance.add_instigator_state(
        InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.STOPPED)
    )


def test_one_run_at_a_time_and_restart_with_backoff() -> None:
    with instance_for_test() as instance:
        sensor = build_stream_sensor(SPEC, build_stream_job(SPEC))
        first = sensor(build_sensor_context(instance=instance))
        assert isinstance(first, RunRequest) and first.tags[STREAM_TAG] == SPEC.name
        _add_run(instance, DagsterRunStatus.STARTED)
        assert isinstance(sensor(build_sensor_context(instance=instance)), SkipReason)
        # the run dies: restarted, but only after the backoff
        run = instance.get_runs()[0]
        instance.report_run_failed(run)
        now = time.time()
        assert isinstance(decide_stream_run(instance, SPEC, now), SkipReason)
        assert isinstance(decide_stream_run(instance, SPEC, now + 3600), RunRequest)


def test_supervisor_gone_when_no_heartbeat_or_sensor_off() -> None:
    with instance_for_test() as instance:
        now = time.time()
        write_heartbeat(instance, SPEC, now)
        assert supervisor_gone(instance, SPEC, now + 1) is None
        assert "no sensor tick" in (supervisor_gone(instance, SPEC, now + 3600) or "")
        _turn_sensor_off(instance)
        assert "turned off" in (supervisor_gone(instance, SPEC, now + 1) or "")


def test_stream_run_stops_when_the_sensor_is_turned_off(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(streams, "WATCH_INTERVAL_S", 0.2)
    fake = BinanceStreamFake(per_ms=1)
    with serve_in_thread(fake.app) as origin, instance_for_test() as instance:
        spec = StreamSpec(
            "binance",
            DataType.TRADES,
            (Symbol.parse("BTC/USDT"),),
            rest_url=origin,
            ws_url=origin.replace("http", "ws"),
        )
        write_heartbeat(instance, spec, time.time())
        timer = threading.Timer(2.0, _turn_sensor_off, args=(instance,))
        timer.start()
        started = time.monotonic()
        result = build_stream_job(spec).execute_in_process(
            instance=instance, resources={STORE_KEY: DccdStore(root=str(tmp_path))}
        )
        elapsed = time.monotonic() - started
        timer.join()
    assert result.success
    assert elapsed < 2.0 + 10.0
    mats = [
        e.event_specific_data.materialization  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    assert mats and mats[-1].metadata["final"].value is True
    assert mats[0].partition is not None
    stored = Store(tmp_path).read(spec.key(spec.symbols[0]))
    ids = stored.get_column("trade_id").cast(pl.Int64)
    assert stored.height > 100 and ids.max() - ids.min() + 1 == stored.height  # type: ignore[operator]
    assert sum(m.metadata["rows"].value for m in mats) == stored.height
