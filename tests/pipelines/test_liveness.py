"""Run liveness: the decision, the sensor on a real (temporary) instance, the executor."""

from __future__ import annotations

import time

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SkipReason,
    build_sensor_context,
    execute_job,
    in_process_executor,
    job,
    op,
    reconstructable,
)
from dagster._core.test_utils import instance_for_test

from dccd_core.domain import ConfigError
from dccd_pipelines.liveness import (
    DEFAULT_TIMEOUT_S,
    SENSOR_NAME,
    build_dead_run_sensor,
    dead_reason,
    fail_dead_runs,
    last_alive,
    liveness_timeout_s,
    sensor_interval_s,
    with_liveness,
    write_run_alive,
)

POOL = "dccd_binance"
JOB = "binance__ohlc__btc_usdt_1m"
ASSET = AssetKey(["binance", "ohlc", "btc_usdt_1m"])
TIMEOUT_S = 60.0


def _run(instance: DagsterInstance, job_name: str = JOB, **kw) -> DagsterRun:  # type: ignore[no-untyped-def]
    return instance.add_run(DagsterRun(job_name=job_name, status=DagsterRunStatus.STARTED, **kw))


def _claim(instance: DagsterInstance, run: DagsterRun, step: str = "fetch") -> None:
    status = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, step)
    assert status.is_claimed, status


def _claimed(instance: DagsterInstance) -> list[str]:
    return [s.run_id for s in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots]


def test_the_decision() -> None:
    now = 10_000.0
    kw = {"now_s": now, "timeout_s": TIMEOUT_S}
    # a recent sign of life: alive, owned or not
    assert dead_reason(started_s=0, alive_s=now - 30, owned=True, **kw) is None
    # silent past the timeout: dead, whoever's run it is (only dccd writes the sign)
    reason = dead_reason(started_s=0, alive_s=now - 61, owned=False, **kw)
    assert reason is not None and "no sign of life for 61 s (timeout 60 s)" in reason
    # never a sign of life: a dccd run is dead once the timeout has passed since its start
    assert dead_reason(started_s=now - 30, alive_s=None, owned=True, **kw) is None
    reason = dead_reason(started_s=now - 90, alive_s=None, owned=True, **kw)
    assert reason is not None and "before its first heartbeat" in reason
    # ... another code location's run is never judged on a sign it does not write
    assert dead_reason(started_s=now - 9_000, alive_s=None, owned=False, **kw) is None


def test_the_sensor_fails_dead_runs_and_frees_their_slots() -> None:
    with instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 2)
        dead, alive, waiting = _run(instance), _run(instance), _run(instance)
        foreign = _run(instance, job_name="someone_elses_job")
        _claim(instance, dead)
        _claim(instance, alive)
        now = time.time()
        write_run_alive(instance, dead.run_id, now - 10 * TIMEOUT_S)  # killed long ago
        write_run_alive(instance, alive.run_id, now)
        write_run_alive(instance, waiting.run_id, now)  # waits for a slot, beating
        # the pool is full: a third claim waits
        assert not instance.event_log_storage.claim_concurrency_slot(
            POOL, waiting.run_id, "fetch").is_claimed
        assert sorted(_claimed(instance)) == sorted([dead.run_id, alive.run_id])

        sensor = build_dead_run_sensor([JOB], [ASSET], TIMEOUT_S)
        assert sensor.name == SENSOR_NAME
        assert sensor.minimum_interval_seconds == sensor_interval_s(TIMEOUT_S) == 15
        result = sensor(build_sensor_context(instance=instance))
        assert isinstance(result, SkipReason)
        assert f"run {dead.run_id} ({JOB}) is dead: no sign of life for" in str(
            result.skip_message)

        failed = instance.get_run_by_id(dead.run_id)
        assert failed is not None and failed.status is DagsterRunStatus.FAILURE
        message = next(
            r.dagster_event.message or "" for r in instance.all_logs(dead.run_id)
            if r.dagster_event and r.dagster_event.event_type_value == "PIPELINE_FAILURE"
        )
        assert "kill -9, out of memory, a reboot" in message
        assert f"Marked failed by {SENSOR_NAME}; its pool slots are freed ({POOL}: 1)" in message
        for other in (alive, waiting, foreign):
            got = instance.get_run_by_id(other.run_id)
            assert got is not None and got.status is DagsterRunStatus.STARTED
        # the dead run's slot went to the waiting run
        assert sorted(_claimed(instance)) == sorted([alive.run_id])
        assert instance.event_log_storage.claim_concurrency_slot(
            POOL, waiting.run_id, "fetch").is_claimed
        # its sign of life is swept; the live runs keep theirs
        assert set(last_alive(instance, [dead.run_id, alive.run_id])) == {alive.run_id}
        # a second tick finds nothing more to do
        again = sensor(build_sensor_context(instance=instance))
        assert isinstance(again, SkipReason) and "no dead run" in str(again.skip_message)


def test_a_run_dead_before_its_first_beat_and_a_finished_run_keeping_slots() -> None:
    with instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 2)
        silent = _run(instance, job_name="__ASSET_JOB", asset_selection=frozenset({ASSET}))
        foreign = _run(instance, job_name="__ASSET_JOB",
                       asset_selection=frozenset({AssetKey(["other"])}))
        ended = _run(instance)
        _claim(instance, silent)
        _claim(instance, ended)
        instance.report_run_canceled(ended)  # cancelled while its worker was gone: slot kept
        from dccd_pipelines.liveness import owned_by

        owned = owned_by([JOB], [ASSET])
        later = time.time() + 2 * TIMEOUT_S
        done = fail_dead_runs(instance, time.time(), TIMEOUT_S, owned)
        assert done == [] and len(_claimed(instance)) == 2  # nothing is late yet
        done = fail_dead_runs(instance, later, TIMEOUT_S, owned)
        assert any("before its first heartbeat" in line and silent.run_id in line
                   for line in done), done
        assert any(f"finished run {ended.run_id}" in line for line in done), done
        assert _claimed(instance) == []
        assert instance.get_run_by_id(silent.run_id).status is DagsterRunStatus.FAILURE  # type: ignore[union-attr]
        assert instance.get_run_by_id(foreign.run_id).status is DagsterRunStatus.STARTED  # type: ignore[union-attr]


@op
def _look(context) -> None:  # type: ignore[no-untyped-def]
    alive = last_alive(context.instance, [context.run_id])
    context.log.info(f"alive at {alive[context.run_id]!r}")


@job(executor_def=with_liveness(in_process_executor, timeout_s=1.0))
def _beating() -> None:
    _look()


def test_every_run_under_the_wrapped_executor_writes_its_sign_of_life() -> None:
    # a real run (execute_in_process would swap the job's executor for its own)
    with instance_for_test() as instance:
        before = time.time()
        with execute_job(reconstructable(_beating), instance=instance) as result:
            assert result.success
            run_id = result.run_id
        logged = [r.user_message for r in instance.all_logs(run_id) if "alive at" in r.user_message]
        assert logged, "the op saw no sign of life of its own run"
        seen = float(logged[0].rsplit(" ", 1)[1])
        assert seen >= before  # written before the op ran
        assert last_alive(instance, [run_id])[run_id] >= seen  # and once more at the end


def test_dccd_jobs_run_under_the_wrapped_executor_and_the_timeout_knob() -> None:
    from pathlib import Path

    from dccd_pipelines.definitions import build_definitions
    from tests.pipelines.conftest import make_catalog

    catalog = make_catalog(Path("/tmp/lake"), "http://127.0.0.1:1", data_types=["ohlc", "trades"],
                           stream=["trades"])
    repo = build_definitions(catalog).get_repository_def()
    for dagster_job in repo.get_all_jobs():
        creation = dagster_job.executor_def.executor_creation_fn
        assert creation is not None and "with_liveness" in creation.__qualname__, dagster_job.name
    assert SENSOR_NAME in {s.name for s in repo.sensor_defs}
    assert liveness_timeout_s({}) == DEFAULT_TIMEOUT_S == 120
    assert liveness_timeout_s({"DCCD_RUN_LIVENESS_TIMEOUT_S": "6"}) == 6.0
    # the default fails a dead run well within 5 minutes: timeout + one sensor interval
    assert DEFAULT_TIMEOUT_S + sensor_interval_s(DEFAULT_TIMEOUT_S) <= 180
    with pytest.raises(ConfigError, match="DCCD_RUN_LIVENESS_TIMEOUT_S"):
        liveness_timeout_s({"DCCD_RUN_LIVENESS_TIMEOUT_S": "soon"})
