"""Stream supervision against a real (temporary) Dagster instance and a fake Binance."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterRun, DagsterRunStatus, RunRequest, SkipReason, build_sensor_context
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType
from dagster._core.test_utils import instance_for_test

from dccd_core.domain import ConfigError, DataType, Symbol
from dccd_core.operations.stream import FlushReport
from dccd_core.storage import Store
from dccd_pipelines import streams
from dccd_pipelines.resources import STORE_KEY, DccdStore
from dccd_pipelines.streams import (
    SPEC_TAG,
    STREAM_TAG,
    StreamSpec,
    build_stream_definitions,
    build_stream_job,
    build_stream_sensor,
    decide_stream_run,
    stop_reason,
    stream_end_problem,
    stream_specs,
    supervisor_gone,
    write_heartbeat,
    write_run_alive,
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


def test_a_silent_started_run_is_failed_and_replaced_at_once() -> None:
    """A worker killed with -9 leaves its run STARTED forever (the default run launcher
    has no health check): the sensor must not wait for it."""
    with instance_for_test() as instance:
        run = _add_run(instance, DagsterRunStatus.STARTED)
        now = time.time()
        # alive (its own sign of life is recent): one run at a time
        write_run_alive(instance, SPEC, run.run_id, now)
        assert isinstance(decide_stream_run(instance, SPEC, now + 1), SkipReason)
        # silent for longer than the supervisor timeout: failed, and a new run at once
        later = now + SPEC.heartbeat_timeout_s + 1
        request = decide_stream_run(instance, SPEC, later)
        assert isinstance(request, RunRequest) and request.tags[STREAM_TAG] == SPEC.name
        dead = instance.get_run_by_id(run.run_id)
        assert dead is not None and dead.status is DagsterRunStatus.FAILURE
        # a run that never wrote a sign of life counts from its start
        other = _add_run(instance, DagsterRunStatus.STARTED)
        assert isinstance(decide_stream_run(instance, SPEC, time.time()), SkipReason)
        assert isinstance(decide_stream_run(instance, SPEC, later + 3600), RunRequest)
        assert instance.get_run_by_id(other.run_id).status is DagsterRunStatus.FAILURE  # type: ignore[union-attr]


def test_stream_jobs_are_never_auto_retried_and_knobs_come_from_env() -> None:
    assert build_stream_job(SPEC).tags["dagster/max_retries"] == "0"
    assert SPEC.sensor_interval_s == 30 and SPEC.heartbeat_timeout_s == 120
    from tests.pipelines.conftest import make_catalog

    catalog = make_catalog(Path("/tmp/lake"), "http://127.0.0.1:1", data_types=["trades"],
                           spans=[], stream=["trades"])
    [spec] = stream_specs(catalog.datasets, env={})
    assert (spec.sensor_interval_s, spec.heartbeat_timeout_s) == (30, 120)
    env = {"DCCD_STREAM_SENSOR_INTERVAL_S": "5", "DCCD_STREAM_SUPERVISOR_TIMEOUT_S": "15"}
    [spec] = stream_specs(catalog.datasets, env=env)
    assert (spec.sensor_interval_s, spec.heartbeat_timeout_s) == (5, 15.0)
    assert build_stream_sensor(spec, build_stream_job(spec)).minimum_interval_seconds == 5
    with pytest.raises(ConfigError, match="DCCD_STREAM_SUPERVISOR_TIMEOUT_S"):
        stream_specs(catalog.datasets, env={"DCCD_STREAM_SUPERVISOR_TIMEOUT_S": "soon"})


def test_stream_run_stops_when_the_sensor_is_turned_off(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(streams.run, "WATCH_INTERVAL_S", 0.2)
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
    assert all(m.metadata["connected"].value is True for m in mats)
    assert mats[-1].metadata["last_message_age_s"].value < 5
    stored = Store(tmp_path).read(spec.key(spec.symbols[0]))
    ids = stored.get_column("trade_id").cast(pl.Int64)
    assert stored.height > 100 and ids.max() - ids.min() + 1 == stored.height  # type: ignore[operator]
    assert sum(m.metadata["rows"].value for m in mats) == stored.height


def test_an_offline_stream_says_so_at_once_and_never_ends_green(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch
) -> None:
    """Nothing listens at the ws_url: the run log says "not connected" with the error at
    once, no materialization claims data, and the supervisor's stop fails the run."""
    monkeypatch.setattr(streams.run, "WATCH_INTERVAL_S", 0.2)
    spec = StreamSpec(
        "binance",
        DataType.TRADES,
        (Symbol.parse("BTC/USDT"),),
        rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
        supervisor_timeout_s=3.0,
    )
    with instance_for_test() as instance:
        write_heartbeat(instance, spec, time.time())  # the supervisor ticks once, then is gone
        result = build_stream_job(spec).execute_in_process(
            instance=instance,
            resources={STORE_KEY: DccdStore(root=str(tmp_path))},
            raise_on_error=False,
        )
        records = instance.all_logs(result.run_id)
    assert not result.success
    failure = result.failure_data_for_node(f"{spec.name}_op")
    assert failure is not None and failure.user_failure_data is not None
    message = failure.user_failure_data.description or ""
    assert message.startswith(f"{spec.name} received nothing in ")
    refused = "connection refused by ws://127.0.0.1:1/..."
    assert f"never connected to binance (last error: {refused})" in message
    assert failure.user_failure_data.metadata["connected"].value is False
    warnings = [
        r for r in records if r.user_message and "not connected (last error: connection refused"
        in r.user_message
    ]
    [step_start] = [r for r in records if r.dagster_event is not None
                    and r.dagster_event.event_type_value == "STEP_START"]
    # at once, not at the first flush (5 s) nor when the retries run out (minutes)
    assert warnings and warnings[0].timestamp - step_start.timestamp < 1.0
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert any("no sensor tick" in (r.user_message or "") for r in records)


_OK_REPORT = FlushReport("binance", DataType.TRADES, 0, 10, None, None, 0, 0, 0, 0, 0, 3, 10,
                         {}, final=True, connected=True, messages=10,
                         last_message_age_s=0.5, elapsed_s=30.0)


def test_how_a_stopped_stream_run_ends() -> None:
    """Green only when it received data and was connected at the stop (or had just lost
    the connection: the next run heals that gap)."""
    ok = _OK_REPORT
    assert stream_end_problem(SPEC, ok) is None
    blip = replace(ok, connected=False, down_s=5.0, last_error="server closed (1006)")
    assert stream_end_problem(SPEC, blip) is None
    outage = replace(blip, down_s=streams.OUTAGE_FAIL_S + 1)
    assert stream_end_problem(SPEC, outage) == (
        f"{SPEC.name} had lost its connection 61 s before it stopped (last error: server "
        "closed (1006)); the next run heals the gap from REST"
    )
    silent = replace(ok, messages=0, last_message_age_s=None, total_rows=0)
    assert stream_end_problem(SPEC, silent) == (
        f"{SPEC.name} received nothing in 30 s: connected, but no message came for BTC/USDT; "
        "check the symbols and the ws_url"
    )


def _catalog(root: Path, symbols: list[str], data_type: str):  # type: ignore[no-untyped-def]
    from tests.pipelines.conftest import make_catalog

    return make_catalog(root, "http://127.0.0.1:1", symbols=symbols, data_types=[data_type],
                        spans=[], stream=[data_type])


def _tick(catalog, name: str, instance):  # type: ignore[no-untyped-def]
    """One tick of the stream sensor ``name`` as the code location built from ``catalog``."""
    _, sensors = build_stream_definitions(catalog)
    [sensor] = [s for s in sensors if s.name == f"{name}_sensor"]
    return sensor(build_sensor_context(instance=instance))


def test_a_reload_restarts_a_changed_stream_and_stops_one_that_left(tmp_path: Path) -> None:
    """Catalog A streams BTC/USDT trades; the edit B adds ETH/USDT; the edit C drops the
    trades stream (a book stream stays). The running stream is never left to die."""
    catalog_a = _catalog(tmp_path, ["BTC/USDT"], "trades")
    catalog_b = _catalog(tmp_path, ["BTC/USDT", "ETH/USDT"], "trades")
    catalog_c = _catalog(tmp_path, ["BTC/USDT"], "book")
    name = "binance__trades__stream"
    with instance_for_test() as instance:
        request = _tick(catalog_a, name, instance)
        assert isinstance(request, RunRequest)
        run = instance.add_run(DagsterRun(job_name=name, tags=request.tags,
                                          status=DagsterRunStatus.STARTED))
        spec_a = replace(stream_specs(catalog_a.datasets)[0], catalog=str(catalog_a.path))
        fingerprint = run.tags[SPEC_TAG]
        assert stop_reason(instance, spec_a, time.time(), fingerprint) is None
        # reload with B: the sensor keeps ticking, the run learns at once that it must
        # restart (a planned stop), and the next tick starts the new one
        skip = _tick(catalog_b, name, instance)
        assert isinstance(skip, SkipReason) and "before the reload" in (skip.skip_message or "")
        reason = stop_reason(instance, spec_a, time.time(), fingerprint)
        assert reason == (f"the catalog changed what {name} streams (reloaded); the sensor "
                          "restarts it with the new settings", False)
        instance.report_run_canceled(run)
        restart = _tick(catalog_b, name, instance)
        assert isinstance(restart, RunRequest) and restart.tags[SPEC_TAG] != fingerprint
        run_b = instance.add_run(DagsterRun(job_name=name, tags=restart.tags,
                                            status=DagsterRunStatus.STARTED))
        spec_b = replace(stream_specs(catalog_b.datasets)[0], catalog=str(catalog_b.path))
        assert stop_reason(instance, spec_b, time.time(), run_b.tags[SPEC_TAG]) is None
        # reload with C: the trades sensor is gone; the book sensor's tick says so
        _tick(catalog_c, "binance__book__stream", instance)
        reason = stop_reason(instance, spec_b, time.time(), run_b.tags[SPEC_TAG])
        assert reason is not None and reason[1] is False
        assert reason[0].startswith("its dataset left the catalog: ")
        assert "streams no binance trades any more" in reason[0]


def test_a_stream_whose_sensor_is_gone_says_why(tmp_path: Path) -> None:
    """No stream sensor ticks any more: the run reads the catalog file for the reason."""
    path = tmp_path / "dccd.yaml"
    spec = replace(SPEC, catalog=str(path))
    with instance_for_test() as instance:
        now = time.time()
        write_heartbeat(instance, spec, now - 3600)
        path.write_text("datasets:\n  - exchange: binance\n    symbols: [BTC/USDT]\n"
                        "    data_types: [trades]\n    start: 2024-01-01\n")
        reason = stop_reason(instance, spec, now)
        assert reason is not None and reason[0].startswith("its dataset left the catalog: ")
        assert str(path) in reason[0] and reason[1] is False
        path.write_text(path.read_text() + "    stream: [trades]\n")
        assert stop_reason(instance, spec, now) == (
            "no sensor tick for 3600 s (is the Dagster daemon running?)", False)
        path.write_text("datasets: [\n")
        reason = stop_reason(instance, spec, now)
        assert reason is not None and reason[1] is True
        assert reason[0].startswith("the catalog does not load, so the code location has no ")
        assert "invalid YAML" in reason[0]


def test_a_stream_run_evaluates_its_checks_per_day(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch
) -> None:
    """The stream materializes without its asset op, so it evaluates the checks its asset
    declares itself: every check interval on the day it writes, and at the stop."""
    from dagster import AssetCheckKey
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    from dccd_core.domain import iso_date, now_ns
    from dccd_pipelines.checks import dataset_check_specs
    from tests.pipelines.conftest import make_catalog

    monkeypatch.setattr(streams.run, "WATCH_INTERVAL_S", 0.2)
    fake = BinanceStreamFake(per_ms=1)
    with serve_in_thread(fake.app) as origin, instance_for_test() as instance:
        catalog = make_catalog(tmp_path, origin, data_types=["trades"], spans=[],
                               stream=["trades"])
        [spec] = stream_specs(catalog.datasets, env={"DCCD_STREAM_CHECK_INTERVAL_S": "0.5"})
        spec = replace(spec, ws_url=origin.replace("http", "ws"))
        assert spec.check_interval_s == 0.5
        write_heartbeat(instance, spec, time.time())
        timer = threading.Timer(2.0, _turn_sensor_off, args=(instance,))
        timer.start()
        result = streams.build_stream_job(spec).execute_in_process(
            instance=instance, resources={STORE_KEY: DccdStore(root=str(tmp_path))},
        )
        timer.join()
        assert result.success
        day = iso_date(now_ns())
        # archives_verified is the backfill's: no archive file of a day exists before
        # the day is over, so a stream (today's partition) has nothing for it to verify
        declared = {AssetCheckKey(s.asset_key, s.name) for s in
                    dataset_check_specs(catalog.datasets[0]) if s.name != "archives_verified"}
        evaluations = [e.event_specific_data for e in result.all_events
                       if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        # the keys the asset declares (so the UI shows them), for the day
        assert {AssetCheckKey(e.asset_key, e.check_name) for e in evaluations} == declared
        assert {e.partition for e in evaluations} == {day}
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            list(declared), partition_filter=PartitionKeyFilter(key=day)
        )
    assert set(latest) == declared
    by_name = {k.name: r for k, r in latest.items()}
    assert by_name["no_duplicates"].status is AssetCheckExecutionRecordStatus.SUCCEEDED
    assert by_name["sorted_in_period"].status is AssetCheckExecutionRecordStatus.SUCCEEDED
    assert by_name["no_holes"].partition == day


def test_stream_checks_run_every_interval_when_a_day_closes_and_at_the_stop(
    tmp_path: Path,
) -> None:
    from dccd_core.domain import to_ns
    from dccd_core.operations.stream import SymbolReport

    day_ns = to_ns("2024-06-01")
    logged: list[tuple[str, str]] = []

    def report(last_ts: int, *, final: bool = False) -> FlushReport:
        rep = SymbolReport(rows=1, total_rows=5, last_ts=last_ts)
        return replace(_OK_REPORT, per_symbol={"BTC/USDT": rep}, final=final)

    checks = streams.run._StreamChecks(replace(SPEC, check_interval_s=3600.0), str(tmp_path),
                                   lambda e: logged.append((e.partition, e.check_name)))
    checks.after_flush(report(day_ns + 86_398 * 10**9))  # the run's first rows
    checks.after_flush(report(day_ns + 86_399 * 10**9))  # 23:59:59: nothing due
    checks.after_flush(report(day_ns + 86_401 * 10**9))  # past midnight: the day closes
    checks.after_flush(report(day_ns + 86_402 * 10**9))  # nothing due
    checks.after_flush(report(day_ns + 86_403 * 10**9, final=True))  # the stop
    checks.close()
    names = ["no_duplicates", "sorted_in_period", "no_holes"]
    assert logged == [("2024-06-01", n) for n in names] * 2 + [("2024-06-02", n) for n in names]
    # every interval: each flush past the interval evaluates the current day
    logged.clear()
    checks = streams.run._StreamChecks(replace(SPEC, check_interval_s=0.05), str(tmp_path),
                                   lambda e: logged.append((e.partition, e.check_name)))
    checks.after_flush(report(day_ns + 3600 * 10**9))  # first rows
    for _ in range(3):
        time.sleep(0.06)
        checks.after_flush(report(day_ns + 3600 * 10**9))
    checks.close()
    assert logged == [("2024-06-01", n) for n in names] * 4
