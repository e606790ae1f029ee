"""Failure alerts: a Slack-compatible webhook told when a dccd run fails or a stream
goes stale.

With ``alerts: {webhook: URL}`` in the catalog (or ``DCCD_ALERTS_WEBHOOK``), two
default-running sensors POST ``{"text": "..."}`` (Slack's incoming-webhook shape, which
Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint and most chat tools accept):

* ``dccd_failure_alerts`` (a ``run_failure_sensor``): one message per failed dccd run,
  naming the run, its job, its assets and partition, and the error (the first failed
  step's error, else the run's failure message: a dead run says "no sign of life");
* ``dccd_stale_streams``: a stream is stale when its newest stored row is older than
  ``alerts.stale_after`` (default 10 minutes), or when it has had no live run (an
  active run with a fresh sign of life, ``liveness.py``) for that long. One message
  when it becomes stale, one when it recovers: what was sent is kept in the sensor's
  cursor, so a stale stream is not reported on every tick. A stream whose sensor is
  turned off is not expected to run and is not reported.

A webhook that fails (refused, timeout, non-2xx) is logged as a warning; it never
breaks a sensor.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from dccd_core.catalog import AlertSettings
from dccd_core.domain import iso_datetime

from .liveness import last_alive, liveness_timeout_s
from .streams import STREAM_TAG, StreamSpec

__all__ = [
    "FAILURE_SENSOR_NAME",
    "STALE_SENSOR_NAME",
    "build_alert_sensors",
    "build_failure_alert_sensor",
    "build_stale_stream_sensor",
    "failure_text",
    "post_alert",
    "stale_streams",
]

log = logging.getLogger(__name__)

FAILURE_SENSOR_NAME = "dccd_failure_alerts"
STALE_SENSOR_NAME = "dccd_stale_streams"
STALE_SENSOR_INTERVAL_S = 60
WEBHOOK_TIMEOUT_S = 10.0
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
           DagsterRunStatus.STARTED]


def post_alert(
    url: str, text: str, *, timeout_s: float = WEBHOOK_TIMEOUT_S,
    warn: Callable[[str], None] = log.warning,
) -> bool:
    """POST ``{"text": text}`` to ``url``; False (and a warning) if it did not take it."""
    try:
        reply = httpx.post(url, json={"text": text}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        warn(f"dccd alert not delivered to the webhook ({type(exc).__name__}: {exc}): {text}")
        return False
    if reply.is_success:
        return True
    warn(f"dccd alert refused by the webhook (HTTP {reply.status_code}: {reply.text[:200]}): "
         f"{text}")
    return False


# -- failed runs ---------------------------------------------------------------------------


def _first_line(text: str, limit: int = 500) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def failure_text(run: DagsterRun, error: str) -> str:
    """One message: run, job, assets, partition, error."""
    assets = sorted("/".join(k.path) for k in (run.asset_selection or ()))
    what = f" ({', '.join(assets)})" if assets else ""
    partition = run.tags.get("dagster/partition") or (
        f"{run.tags['dagster/asset_partition_range_start']}..."
        f"{run.tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in run.tags else "")
    days = f", partition {partition}" if partition else ""
    return (f"dccd run {run.run_id} of job {run.job_name}{what}{days} failed: "
            f"{_first_line(error) or 'no error message'}")


def _run_error(context: RunFailureSensorContext) -> str:
    for event in context.get_step_failure_events():
        data: Any = event.event_specific_data
        error = getattr(data, "error", None)
        while error is not None and error.cause is not None:  # Dagster wraps the user's error
            error = error.cause
        if error is not None:
            return f"step {event.step_key}: {error.message}"
    return context.failure_event.message or ""


def build_failure_alert_sensor(
    settings: AlertSettings, owned: Callable[[DagsterRun], bool]
) -> SensorDefinition:
    """``dccd_failure_alerts``: every failed dccd run -> one webhook message."""

    @run_failure_sensor(
        name=FAILURE_SENSOR_NAME,
        default_status=DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=True,  # CLI runs (`-m ...`) belong to another location
        description="Posts a message to the catalog's alerts.webhook when a dccd run fails.",
    )
    def _failed(context: RunFailureSensorContext) -> None:
        run = context.dagster_run
        if not owned(run):
            return
        post_alert(settings.webhook, failure_text(run, _run_error(context)),
                   warn=context.log.warning)

    return _failed


# -- stale streams -------------------------------------------------------------------------


def _sensor_off(instance: DagsterInstance, name: str) -> bool:
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

    return any(
        s.instigator_name == name and s.status is InstigatorStatus.STOPPED
        for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    )


def _run_alive(instance: DagsterInstance, spec: StreamSpec, now_s: float) -> str | None:
    """The id of the stream's live run (active, with a fresh sign of life), or None."""
    runs = instance.get_runs(filters=RunsFilter(tags={STREAM_TAG: spec.name}, statuses=_ACTIVE))
    if not runs:
        return None
    alive = last_alive(instance, [r.run_id for r in runs])
    timeout_s = liveness_timeout_s()
    for run in runs:
        if run.status is not DagsterRunStatus.STARTED:
            return run.run_id  # about to start
        if now_s - alive.get(run.run_id, 0.0) <= timeout_s:
            return run.run_id
    return None


def stale_streams(
    instance: DagsterInstance,
    specs: Sequence[StreamSpec],
    last_ts: Callable[[StreamSpec], int | None],
    stale_after_s: float,
    now_s: float,
    memory: dict[str, dict[str, float]],
) -> dict[str, str]:
    """{stream name: why it is stale} now. ``memory`` (kept in the cursor) holds when each
    stream was first seen (``seen``: the age of a stream that stored nothing yet) and first
    seen without a live run (``down``); it is updated in place."""
    seen, down = memory.setdefault("seen", {}), memory.setdefault("down", {})
    stale: dict[str, str] = {}
    for spec in specs:
        if _sensor_off(instance, spec.sensor_name):
            seen.pop(spec.name, None)
            down.pop(spec.name, None)
            continue
        first_s = seen.setdefault(spec.name, now_s)
        reasons = []
        newest = last_ts(spec)
        if newest is not None and now_s - newest / 1e9 > stale_after_s:
            reasons.append(f"last stored message {now_s - newest / 1e9:.0f} s ago "
                           f"({iso_datetime(newest)})")
        elif newest is None and now_s - first_s > stale_after_s:
            reasons.append(f"nothing stored in {now_s - first_s:.0f} s")
        if _run_alive(instance, spec, now_s) is None:
            down_s = now_s - down.setdefault(spec.name, now_s)
            if down_s > stale_after_s:
                reasons.append(f"no live stream run for {down_s:.0f} s")
        else:
            down.pop(spec.name, None)
        if reasons:
            stale[spec.name] = "; ".join(reasons)
    return stale


def build_stale_stream_sensor(
    settings: AlertSettings, specs: Sequence[StreamSpec], store_root: str
) -> SensorDefinition:
    """``dccd_stale_streams``: one message when a stream goes stale, one when it recovers."""

    def newest(spec: StreamSpec) -> int | None:
        from dccd_core.storage import Store

        store = Store(root=store_root)
        stamps = [ts for s in spec.symbols if (ts := store.last_ts(spec.key(s))) is not None]
        return max(stamps) if stamps else None

    @sensor(
        name=STALE_SENSOR_NAME,
        minimum_interval_seconds=STALE_SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Posts to the catalog's alerts.webhook when a stream stores nothing for "
            f"{settings.stale_after_s:.0f} s or has no live run that long."
        ),
    )
    def _stale(context: SensorEvaluationContext) -> SkipReason:
        state = json.loads(context.cursor) if context.cursor else {}
        alerted: dict[str, str] = state.pop("alerted", {})
        stale = stale_streams(context.instance, specs, newest, settings.stale_after_s,
                              time.time(), state)
        sent = []
        for name, why in stale.items():
            if name not in alerted:
                text = f"dccd stream {name} is stale: {why}"
                if post_alert(settings.webhook, text, warn=context.log.warning):
                    alerted[name] = why
                    sent.append(text)
        for name in [n for n in alerted if n not in stale]:
            text = f"dccd stream {name} recovered (was: {alerted[name]})"
            if post_alert(settings.webhook, text, warn=context.log.warning):
                del alerted[name]
                sent.append(text)
        context.update_cursor(json.dumps({**state, "alerted": alerted}))
        if sent:
            return SkipReason("; ".join(sent))
        return SkipReason(f"{len(stale)} stale stream(s), nothing new to send")

    return _stale


def build_alert_sensors(
    settings: AlertSettings | None,
    specs: Sequence[StreamSpec],
    store_root: str,
    owned: Callable[[DagsterRun], bool],
) -> list[SensorDefinition]:
    """The alert sensors of the catalog's ``alerts:`` (none without a webhook)."""
    if settings is None:
        return []
    sensors = [build_failure_alert_sensor(settings, owned)]
    if specs:
        sensors.append(build_stale_stream_sensor(settings, specs, store_root))
    return sensors
