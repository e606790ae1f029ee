"""Run liveness: every dccd run says it is alive; a run that stops saying so is failed.

Dagster's run monitoring cannot see a dead worker with the default run launcher (it has
no worker health check), so a run whose process died without a word (``kill -9``, out
of memory, a reboot) stays STARTED for good, and keeps its ``dccd_<exchange>`` pool
slots: with two such runs every later run on that exchange waits forever. Dagster's
``free_slots_after_run_end_seconds`` frees slots of *finished* runs only.

The mechanism, one for every dccd run (asset runs, update runs, stream runs):

* **the sign of life**: every dccd job runs under an executor wrapped by
  ``with_liveness``; while the run's orchestrating process executes, a thread writes
  ``dccd_run_alive:<run_id> = <unix time>`` into the instance's key-value store every
  ``timeout / 4`` seconds (at most 15 s) — from the first moment of execution, so also
  while the run waits for a pool slot. Stream runs write it from their watchdog too;
* **the judge**: the default-running sensor ``dccd_dead_runs`` (every ``timeout / 4``
  s, at most 30 s) looks at STARTED runs. A run whose last sign of life is older than
  the timeout, or a dccd run that has none ``timeout`` seconds after it started, is
  dead: it is marked failed with the reason (``report_run_failed``, failure reason
  ``UNEXPECTED_TERMINATION``) and its pool slots are freed
  (``free_concurrency_slots_for_run``), so the waiting runs on that exchange start at
  once. A finished dccd run still holding slots after the timeout (cancelled while its
  worker was gone) has them freed too;
* ``DCCD_RUN_LIVENESS_TIMEOUT_S`` (default 120) sets the timeout, read when the
  definitions load (code server and run workers alike). With the defaults a dead run
  is failed within ~150 s, well inside 5 minutes.

What this cannot see: a process alive but stuck (a deadlock) still beats; a run
whose orchestrator died while one of its step processes goes on is failed once the
orchestrator is silent (the orphan step may still finish its work). Clocks of the
run's host and of the sensor's host must agree to within a fraction of the timeout.
A run launched by a dccd older than this mechanism has no sign of life and is failed
``timeout`` seconds after it started: let such runs end before upgrading.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    Executor,
    ExecutorDefinition,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from dccd_core.domain import ConfigError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SENSOR_NAME",
    "TIMEOUT_ENV",
    "DeadRun",
    "RunHeartbeat",
    "beat_interval_s",
    "build_dead_run_sensor",
    "dead_reason",
    "fail_dead_run",
    "fail_dead_runs",
    "find_dead_runs",
    "last_alive",
    "liveness_timeout_s",
    "owned_by",
    "sensor_interval_s",
    "with_liveness",
    "write_run_alive",
]

log = logging.getLogger(__name__)

TIMEOUT_ENV = "DCCD_RUN_LIVENESS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 120.0
SENSOR_NAME = "dccd_dead_runs"
POOL_PREFIX = "dccd_"
_ALIVE_PREFIX = "dccd_run_alive:"
_FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


# -- knobs ------------------------------------------------------------------------------


def env_seconds(env: Mapping[str, str], name: str) -> float | None:
    """The env knob ``name`` as seconds > 0; None when unset or blank."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds > 0; fix or unset it")
    return value


def liveness_timeout_s(env: Mapping[str, str] | None = None) -> float:
    """``DCCD_RUN_LIVENESS_TIMEOUT_S`` (seconds > 0), default 120."""
    value = env_seconds(os.environ if env is None else env, TIMEOUT_ENV)
    return DEFAULT_TIMEOUT_S if value is None else value


def beat_interval_s(timeout_s: float) -> float:
    """How often a run writes its sign of life: four beats per timeout, at most 15 s."""
    return max(0.2, min(15.0, timeout_s / 4))


def sensor_interval_s(timeout_s: float) -> int:
    """How often ``dccd_dead_runs`` ticks: four ticks per timeout, 1..30 s."""
    return max(1, min(30, round(timeout_s / 4)))


# -- the sign of life ---------------------------------------------------------------------


def write_run_alive(instance: DagsterInstance, run_id: str, now_s: float | None = None) -> None:
    """The run's sign of life (read by ``dccd_dead_runs`` and the stream sensors)."""
    now_s = time.time() if now_s is None else now_s
    instance.run_storage.set_cursor_values({_ALIVE_PREFIX + run_id: repr(now_s)})


def last_alive(instance: DagsterInstance, run_ids: Collection[str]) -> dict[str, float]:
    """The last sign of life of each run that wrote one (unix seconds)."""
    if not run_ids:
        return {}
    values = instance.run_storage.get_cursor_values({_ALIVE_PREFIX + r for r in run_ids})
    out = {}
    for key, value in values.items():
        with contextlib.suppress(ValueError):
            out[key[len(_ALIVE_PREFIX):]] = float(value)
    return out


class RunHeartbeat:
    """A daemon thread writing the run's sign of life every ``interval_s`` while the
    ``with`` block runs, plus once more when it ends (the run is still STARTED for a
    moment after its executor returns; a fresh beat keeps it from looking dead)."""

    def __init__(self, instance: DagsterInstance, run_id: str, interval_s: float) -> None:
        self._instance = instance
        self._run_id = run_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"dccd-alive-{run_id[:8]}",
                                        daemon=True)
        self._warned = False

    def _beat(self) -> None:
        try:
            write_run_alive(self._instance, self._run_id)
        except Exception as exc:  # a busy SQLite must not fail the run; the next beat retries
            if not self._warned:
                self._warned = True
                log.warning(f"dccd: could not write the run's sign of life ({exc}); retrying")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._beat()

    def __enter__(self) -> RunHeartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._beat()


class _LivenessExecutor(Executor):
    """Any executor, with the run's sign of life written while it executes."""

    def __init__(self, inner: Executor, interval_s: float) -> None:
        self._inner = inner
        self._interval_s = interval_s

    @property
    def retries(self):  # type: ignore[no-untyped-def]  # RetryMode, private module
        return self._inner.retries

    @property
    def step_dependency_config(self):  # type: ignore[no-untyped-def]
        return self._inner.step_dependency_config

    def __getattr__(self, name: str) -> Any:  # e.g. max_concurrent, tag_concurrency_limits
        return getattr(self._inner, name)

    def execute(self, plan_context, execution_plan):  # type: ignore[no-untyped-def]
        with RunHeartbeat(plan_context.instance, plan_context.run_id, self._interval_s):
            yield from self._inner.execute(plan_context, execution_plan)


def with_liveness(inner: ExecutorDefinition, timeout_s: float | None = None) -> ExecutorDefinition:
    """``inner`` (same name, config and requirements) writing the run's sign of life."""
    interval_s = beat_interval_s(liveness_timeout_s() if timeout_s is None else timeout_s)
    create = inner.executor_creation_fn
    assert create is not None, f"executor {inner.name} has no creation function"

    def create_with_liveness(init_context):  # type: ignore[no-untyped-def]
        return _LivenessExecutor(create(init_context), interval_s)

    return ExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,  # type: ignore[arg-type]  # already converted
        requirements=inner.get_requirements,
        executor_creation_fn=create_with_liveness,
        description=inner.description,
    )


# -- the judge ----------------------------------------------------------------------------


def dead_reason(
    *,
    started_s: float | None,
    alive_s: float | None,
    now_s: float,
    timeout_s: float,
    owned: bool,
) -> str | None:
    """Why a STARTED run is dead, or None. Pure: the sensor's whole decision.

    ``alive_s``: its last sign of life (None: never wrote one); ``owned``: a dccd run
    (only dccd runs are expected to write one, other code locations' runs are left
    alone unless they did).
    """
    if alive_s is not None:
        silent_s = now_s - alive_s
        if silent_s <= timeout_s:
            return None
        return (
            f"no sign of life for {silent_s:.0f} s (timeout {timeout_s:.0f} s): its process "
            "died (kill -9, out of memory, a reboot)"
        )
    if not owned or started_s is None:
        return None
    silent_s = now_s - started_s
    if silent_s <= timeout_s:
        return None
    return (
        f"no sign of life since it started {silent_s:.0f} s ago (timeout {timeout_s:.0f} s): "
        "its process died before its first heartbeat"
    )


@dataclass(frozen=True, slots=True)
class DeadRun:
    run: DagsterRun
    reason: str


def _pool_holdings(
    instance: DagsterInstance, run_ids: Collection[str]
) -> dict[str, dict[str, int]]:
    """{run_id: {pool: slots claimed or assigned}} over the dccd pools."""
    storage = instance.event_log_storage
    if not run_ids or not getattr(storage, "supports_global_concurrency_limits", False):
        return {}
    pools = [k for k in storage.get_concurrency_keys() if k.startswith(POOL_PREFIX)]
    out: dict[str, dict[str, int]] = {}
    for pool, info in storage.get_concurrency_infos(pools).items():
        held = [s.run_id for s in info.claimed_slots]
        held += [p.run_id for p in info.pending_steps if p.assigned_timestamp is not None
                 and p.run_id not in held]
        for run_id in held:
            if run_id in run_ids:
                out.setdefault(run_id, {}).setdefault(pool, 0)
                out[run_id][pool] += 1
    return out


def _slots_text(holdings: Mapping[str, int]) -> str:
    if not holdings:
        return "it held no pool slot"
    return "its pool slots are freed (" + ", ".join(
        f"{pool}: {n}" for pool, n in sorted(holdings.items())) + ")"


def fail_dead_run(
    instance: DagsterInstance, run: DagsterRun, reason: str, *, by: str = SENSOR_NAME
) -> str:
    """Mark ``run`` failed with ``reason`` and free its pool slots; the message logged."""
    from dagster._core.events import JobFailureData, RunFailureReason

    holdings = _pool_holdings(instance, {run.run_id}).get(run.run_id, {})
    message = (
        f"dccd: run {run.run_id} ({run.job_name}) is dead: {reason}. Marked failed by "
        f"{by}; {_slots_text(holdings)}."
    )
    instance.report_run_failed(
        run,
        message,
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    _free_slots(instance, run.run_id)
    return message


def _free_slots(instance: DagsterInstance, run_id: str) -> None:
    storage = instance.event_log_storage
    if getattr(storage, "supports_global_concurrency_limits", False):
        storage.free_concurrency_slots_for_run(run_id)


def find_dead_runs(
    instance: DagsterInstance,
    now_s: float,
    timeout_s: float,
    owned: Callable[[DagsterRun], bool] = lambda run: False,
) -> list[DeadRun]:
    """The STARTED runs that are dead (``dead_reason``)."""
    started = RunsFilter(statuses=[DagsterRunStatus.STARTED])
    records = list(instance.get_run_records(filters=started))
    alive = last_alive(instance, [r.dagster_run.run_id for r in records])
    dead = []
    for record in records:
        run = record.dagster_run
        reason = dead_reason(
            started_s=record.start_time or record.create_timestamp.timestamp(),
            alive_s=alive.get(run.run_id),
            now_s=now_s,
            timeout_s=timeout_s,
            owned=owned(run),
        )
        if reason is not None:
            dead.append(DeadRun(run, reason))
    return dead


def _finished_holders(instance: DagsterInstance, now_s: float, timeout_s: float) -> list[str]:
    """Finished runs still holding dccd pool slots, ended (or silent) > timeout ago."""
    storage = instance.event_log_storage
    if not getattr(storage, "supports_global_concurrency_limits", False):
        return []
    holders = set(storage.get_concurrency_run_ids())
    pools = [k for k in storage.get_concurrency_keys() if k.startswith(POOL_PREFIX)]
    for info in storage.get_concurrency_infos(pools).values():
        holders |= {s.run_id for s in info.claimed_slots}
    if not holders:
        return []
    records = instance.get_run_records(filters=RunsFilter(run_ids=list(holders),
                                                          statuses=list(_FINISHED)))
    run_ids = [r.dagster_run.run_id for r in records]
    alive = last_alive(instance, run_ids)
    holding = _pool_holdings(instance, set(run_ids))
    out = []
    for record in records:
        run_id = record.dagster_run.run_id
        last = max(alive.get(run_id, 0.0), record.end_time or 0.0)
        if run_id in holding and now_s - last > timeout_s:
            out.append(run_id)
    return out


def fail_dead_runs(
    instance: DagsterInstance,
    now_s: float,
    timeout_s: float,
    owned: Callable[[DagsterRun], bool] = lambda run: False,
) -> list[str]:
    """Fail every dead run and free its slots (and those of finished runs that kept
    theirs); one line per action. This is what the sensor does each tick."""
    done = []
    for dead in find_dead_runs(instance, now_s, timeout_s, owned):
        # read again right before judging: a beat may have landed since the scan
        fresh = last_alive(instance, [dead.run.run_id]).get(dead.run.run_id)
        if fresh is not None and time.time() - fresh <= timeout_s and now_s - fresh <= timeout_s:
            continue
        done.append(fail_dead_run(instance, dead.run, dead.reason))
    for run_id in _finished_holders(instance, now_s, timeout_s):
        _free_slots(instance, run_id)
        done.append(f"freed the pool slots still held by finished run {run_id}")
    _sweep_alive_keys(instance)
    return done


def _sweep_alive_keys(instance: DagsterInstance) -> None:
    """Delete the signs of life of runs that are no longer STARTED (the key-value store
    has no public delete: SQL on Dagster's own table; a storage without it keeps them)."""
    try:
        from dagster._core.storage.runs.schema import KeyValueStoreTable

        storage: Any = instance.run_storage
        with storage.connect() as conn:
            rows = conn.execute(
                KeyValueStoreTable.select().where(
                    KeyValueStoreTable.c.key.like(_ALIVE_PREFIX + "%")
                )
            ).fetchall()
        run_ids = [row.key[len(_ALIVE_PREFIX):] for row in rows]
        if not run_ids:
            return
        started = {
            r.run_id
            for r in instance.get_runs(filters=RunsFilter(run_ids=run_ids, statuses=[
                DagsterRunStatus.STARTED, DagsterRunStatus.STARTING,
                DagsterRunStatus.CANCELING]))
        }
        gone = [_ALIVE_PREFIX + r for r in run_ids if r not in started]
        if gone:
            with storage.connect() as conn:
                conn.execute(KeyValueStoreTable.delete().where(KeyValueStoreTable.c.key.in_(gone)))
    except Exception as exc:  # housekeeping only
        log.debug(f"dccd: could not sweep run signs of life: {exc}")


def owned_by(
    job_names: Collection[str], asset_keys: Collection[AssetKey]
) -> Callable[[DagsterRun], bool]:
    """Whether a run is a dccd run: one of ``job_names``, or an asset run selecting only
    dccd assets (``dagster asset materialize`` runs the implicit ``__ASSET_JOB``)."""
    jobs, assets = frozenset(job_names), frozenset(asset_keys)

    def owned(run: DagsterRun) -> bool:
        if run.job_name in jobs:
            return True
        selection = run.asset_selection
        return selection is not None and bool(selection) and set(selection) <= assets

    return owned


def build_dead_run_sensor(
    job_names: Collection[str],
    asset_keys: Collection[AssetKey],
    timeout_s: float | None = None,
) -> SensorDefinition:
    """The default-running sensor failing dead runs and freeing their slots."""
    timeout = liveness_timeout_s() if timeout_s is None else timeout_s
    owned = owned_by(job_names, asset_keys)

    @sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=sensor_interval_s(timeout),
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Fails dccd runs whose process died (no sign of life for {timeout:.0f} s) and "
            "frees their pool slots, so the exchange is never blocked by a dead run."
        ),
    )
    def _dead_runs(context: SensorEvaluationContext) -> SkipReason:
        done = fail_dead_runs(context.instance, time.time(), timeout, owned)
        for line in done:
            context.log.warning(line)
        return SkipReason("; ".join(done) if done else f"no dead run (timeout {timeout:.0f} s)")

    return _dead_runs
