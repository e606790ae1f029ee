"""Supervision, as plain functions testable against a real instance: the sensor's
heartbeat and stream registry, why a run should stop (``stop_reason``) and whether the
sensor starts a run (``decide_stream_run``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dagster import DagsterInstance, DagsterRunStatus, RunRecord, RunRequest, RunsFilter, SkipReason

from .. import liveness
from .spec import SPEC_TAG, STREAM_TAG, StreamSpec, stream_specs

__all__ = [
    "decide_stream_run",
    "stop_reason",
    "supervisor_gone",
    "write_heartbeat",
    "write_run_alive",
    "write_stream_registry",
]

BACKOFF_BASE_S = 15.0
BACKOFF_CAP_S = 600.0
_ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
_HEARTBEAT_PREFIX = "dccd_stream_heartbeat:"
_REGISTRY_PREFIX = "dccd_streams:"


def write_heartbeat(instance: DagsterInstance, spec: StreamSpec, now_s: float) -> None:
    """The sensor's sign of life, read by the run's watchdog."""
    instance.run_storage.set_cursor_values({_HEARTBEAT_PREFIX + spec.name: repr(now_s)})


def _heartbeat(instance: DagsterInstance, spec: StreamSpec) -> float | None:
    key = _HEARTBEAT_PREFIX + spec.name
    value = instance.run_storage.get_cursor_values({key}).get(key)
    return float(value) if value else None


def _sensor_stopped(instance: DagsterInstance, spec: StreamSpec) -> bool:
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return any(
        s.instigator_name == spec.sensor_name and s.status is InstigatorStatus.STOPPED
        for s in states
    )


def write_run_alive(instance: DagsterInstance, spec: StreamSpec, run_id: str, now_s: float) -> None:
    """The run's sign of life (``liveness.write_run_alive``, shared by every dccd run)."""
    liveness.write_run_alive(instance, run_id, now_s)


def _last_alive(instance: DagsterInstance, spec: StreamSpec, run_id: str) -> float | None:
    return liveness.last_alive(instance, [run_id]).get(run_id)


def _silent_s(
    instance: DagsterInstance, spec: StreamSpec, record: RunRecord, now_s: float
) -> float:
    """Seconds since a STARTED run's last sign of life (or since it started, if none)."""
    last = _last_alive(instance, spec, record.dagster_run.run_id)
    if last is None:
        last = record.start_time or record.update_timestamp.timestamp()
    return now_s - last


def write_stream_registry(
    instance: DagsterInstance, specs: Sequence[StreamSpec], now_s: float
) -> None:
    """Every stream sensor's tick: the streams of its catalog as the code location loaded
    it now, ``{name: fingerprint}``. A run reads it to learn, within a tick of a reload,
    that its stream changed or left the catalog (its own sensor may be gone)."""
    if not specs:
        return
    value = json.dumps({"at": now_s, "streams": {s.name: s.fingerprint for s in specs}})
    instance.run_storage.set_cursor_values({_REGISTRY_PREFIX + specs[0].catalog: value})


def _registry(instance: DagsterInstance, spec: StreamSpec) -> tuple[float, dict[str, str]] | None:
    key = _REGISTRY_PREFIX + spec.catalog
    raw = instance.run_storage.get_cursor_values({key}).get(key)
    if not raw:
        return None
    value = json.loads(raw)
    return float(value["at"]), dict(value["streams"])


def _left_the_catalog(spec: StreamSpec) -> str:
    what = f"{spec.exchange} {spec.data_type}" + (f" {spec.span}" if spec.span else "")
    where = spec.catalog or "the catalog"
    return (
        f"its dataset left the catalog: {where} streams no {what} any more "
        f"(sensor {spec.sensor_name} is gone); this stream is over"
    )


def _catalog_on_disk(spec: StreamSpec) -> str | None:
    """Why the sensor may be gone, read from the catalog file itself (the run's fallback
    when no stream sensor of the catalog ticks any more)."""
    if not spec.catalog:
        return None
    from dccd_core.domain import DccdError

    from ..catalog import load_catalog

    try:
        catalog = load_catalog(spec.catalog)
        names = {s.name for s in stream_specs(catalog.datasets)}
    except DccdError as exc:
        first = str(exc).splitlines()[0]
        return f"the catalog does not load, so the code location has no sensor: {first}"
    return None if spec.name in names else _left_the_catalog(spec)


def stop_reason(
    instance: DagsterInstance, spec: StreamSpec, now_s: float, fingerprint: str | None = None
) -> tuple[str, bool] | None:
    """Why the run of ``spec`` (requested with ``fingerprint``) should stop, and whether
    that is a failure; None to go on.

    * its sensor was turned off; its stream left the catalog (a reload dropped it); the
      catalog changed what it streams (the sensor starts the new run at its next tick):
      a planned stop;
    * no sensor tick for the supervisor timeout: the daemon is gone (planned: the next
      run heals the gap), or the catalog no longer loads (a failure: fix it).
    """
    if _sensor_stopped(instance, spec):
        return f"sensor {spec.sensor_name} was turned off", False
    registry = _registry(instance, spec)
    if registry is not None and now_s - registry[0] <= spec.heartbeat_timeout_s:
        streams = registry[1]
        if spec.name not in streams:
            return _left_the_catalog(spec), False
        if streams[spec.name] != (fingerprint or spec.fingerprint):
            return (
                f"the catalog changed what {spec.name} streams (reloaded); the sensor "
                "restarts it with the new settings", False,
            )
    beat = _heartbeat(instance, spec)
    if beat is not None and now_s - beat > spec.heartbeat_timeout_s:
        on_disk = _catalog_on_disk(spec)
        if on_disk is not None:
            return on_disk, not on_disk.startswith("its dataset left")
        return f"no sensor tick for {now_s - beat:.0f} s (is the Dagster daemon running?)", False
    return None


def supervisor_gone(instance: DagsterInstance, spec: StreamSpec, now_s: float) -> str | None:
    """Why the run should stop (see ``stop_reason``), or None to go on."""
    reason = stop_reason(instance, spec, now_s)
    return reason[0] if reason is not None else None


def decide_stream_run(
    instance: DagsterInstance, spec: StreamSpec, now_s: float
) -> RunRequest | SkipReason:
    """One run per stream: skip while one is active; restart a dead one with backoff."""
    tag = {STREAM_TAG: spec.name}
    request_tags = {**tag, SPEC_TAG: spec.fingerprint}
    active = instance.get_run_records(filters=RunsFilter(tags=tag, statuses=_ACTIVE), limit=1)
    if active:
        run = active[0].dagster_run
        silent_s = _silent_s(instance, spec, active[0], now_s)
        if run.status is not DagsterRunStatus.STARTED or silent_s <= spec.heartbeat_timeout_s:
            if run.tags.get(SPEC_TAG, spec.fingerprint) != spec.fingerprint:
                return SkipReason(
                    f"stream run {run.run_id} streams what the catalog said before the "
                    "reload: it stops within seconds, and the next tick starts the new one"
                )
            return SkipReason(f"stream run {run.run_id} is active")
        liveness.fail_dead_run(
            instance,
            run,
            f"stream run {run.run_id} sent no sign of life for {silent_s:.0f} s: its worker "
            "is gone (killed with dagster dev, OOM, reboot); a new run heals the gap from REST",
            by=spec.sensor_name,
        )
        return RunRequest(run_key=f"{spec.name}:{now_s:.0f}", tags=request_tags)
    recent = instance.get_runs(filters=RunsFilter(tags=tag), limit=10)
    failures = 0
    for run in recent:
        if run.status is not DagsterRunStatus.FAILURE:
            break
        failures += 1
    if failures and recent:
        stats = instance.get_run_stats(recent[0].run_id)
        ended = stats.end_time or stats.start_time or 0.0
        wait_s = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (failures - 1))
        if now_s - ended < wait_s:
            return SkipReason(
                f"stream failed {failures} time(s) in a row; restarting in "
                f"{wait_s - (now_s - ended):.0f} s"
            )
    return RunRequest(run_key=f"{spec.name}:{now_s:.0f}", tags=request_tags)
