"""The judge: find the STARTED runs that stopped beating, fail them with the reason and
free their pool slots (also a finished run's left behind); the ``dccd_dead_runs``
sensor that does it (see the package docstring)."""

from __future__ import annotations

import logging
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
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from .beat import (
    ALIVE_PREFIX,
    SENSOR_NAME,
    last_alive,
    liveness_timeout_s,
    sensor_interval_s,
)

__all__ = [
    "DeadRun",
    "build_dead_run_sensor",
    "dead_reason",
    "fail_dead_run",
    "fail_dead_runs",
    "find_dead_runs",
    "owned_by",
]

#: Whether a run is a dccd run (``owned_by``): one without a sign of life is then dead.
Owned = Callable[[DagsterRun], bool]

log = logging.getLogger(__name__)
POOL_PREFIX = "dccd_"
_FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


def _not_owned(run: DagsterRun) -> bool:
    return False


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
    # slots first: the failure message says they are freed, so once anyone (the UI, an
    # operator, a test) sees the run failed, that must already be true
    _free_slots(instance, run.run_id)
    instance.report_run_failed(
        run,
        message,
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    return message


def _free_slots(instance: DagsterInstance, run_id: str) -> None:
    storage = instance.event_log_storage
    if getattr(storage, "supports_global_concurrency_limits", False):
        storage.free_concurrency_slots_for_run(run_id)


def find_dead_runs(
    instance: DagsterInstance,
    now_s: float,
    timeout_s: float,
    owned: Owned = _not_owned,
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
    instance: DagsterInstance, now_s: float, timeout_s: float, owned: Owned = _not_owned
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
                    KeyValueStoreTable.c.key.like(ALIVE_PREFIX + "%")
                )
            ).fetchall()
        run_ids = [row.key[len(ALIVE_PREFIX):] for row in rows]
        if not run_ids:
            return
        started = {
            r.run_id
            for r in instance.get_runs(filters=RunsFilter(run_ids=run_ids, statuses=[
                DagsterRunStatus.STARTED, DagsterRunStatus.STARTING,
                DagsterRunStatus.CANCELING]))
        }
        gone = [ALIVE_PREFIX + r for r in run_ids if r not in started]
        if gone:
            with storage.connect() as conn:
                conn.execute(KeyValueStoreTable.delete().where(KeyValueStoreTable.c.key.in_(gone)))
    except Exception as exc:  # housekeeping only
        log.debug(f"dccd: could not sweep run signs of life: {exc}")


def owned_by(
    job_names: Collection[str], asset_keys: Collection[AssetKey]
) -> Owned:
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
