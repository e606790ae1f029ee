"""Live streams on Dagster: one sensor supervises one long-running run per stream.

A *stream* is (exchange, data type[, span]) with every catalog symbol that lists the
data type under ``stream:``; its run holds one WebSocket carrying all the symbols
(``dccd_core.operations.stream``), in the in-process executor.

Why a sensor and not a sensor-that-streams: a sensor tick is cut off at 60 s, and
stopping ``dagster dev`` leaves runs alive. So:

* each tick (``minimum_interval_seconds``) the sensor writes a heartbeat into the
  instance's key-value store, then asks the instance for runs of its stream (tag
  ``dccd/stream``) in a non-terminal state: one is active -> skip; none -> request one,
  after a backoff that doubles with each consecutive failed run (cap 10 min);
* the run writes its own sign of life every ``WATCH_INTERVAL_S``. A STARTED run silent
  for longer than the supervisor timeout is dead (its worker was killed: ``kill -9``,
  OOM, a reboot, ``dagster dev``'s process group killed). Dagster's run monitoring
  cannot see that with the default run launcher, so the run would stay STARTED forever
  and block its stream; the sensor marks it failed and requests a new run at once;
* stream runs carry ``dagster/max_retries: 0``: the sensor is their only restarter (an
  automatic re-execution as well would run the stream twice);
* the run watches its supervisor every ``WATCH_INTERVAL_S``: the sensor turned off
  (instigator state STOPPED) or no heartbeat for the supervisor timeout -> it sets the
  stream's stop event, which flushes and returns;
* terminating the run in the UI raises Dagster's interrupt inside the stream, whose
  ``finally`` flushes before the run ends;
* every flush logs an ``AssetMaterialization`` on the dataset asset's day partition
  (rows, last ts, lag, reconnects, healed gaps).

Two knobs, read from the environment when the definitions are built (the code server
and every run worker build them, so the sensor and the run agree), for deployments and
tests that need a faster supervisor; the defaults suit production:

* ``DCCD_STREAM_SENSOR_INTERVAL_S`` (default ``SENSOR_INTERVAL_S`` = 30): the sensor's
  ``minimum_interval_seconds`` (the daemon evaluates sensors at most every ~5 s);
* ``DCCD_STREAM_SUPERVISOR_TIMEOUT_S`` (default 4 x the sensor interval): how long a run
  goes on without a sensor tick before it stops by itself.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    OpExecutionContext,
    RunRecord,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    in_process_executor,
    job,
    op,
    sensor,
)

from dccd_core.domain import (
    ConfigError,
    DatasetKey,
    DataType,
    Span,
    Symbol,
    iso_date,
    iso_datetime,
)
from dccd_core.operations.stream import FlushReport, stream

from . import liveness
from .catalog import Catalog, DatasetSpec
from .resources import STORE_KEY, DccdStore

__all__ = [
    "HEARTBEAT_TIMEOUT_S",
    "SENSOR_INTERVAL_ENV",
    "SENSOR_INTERVAL_S",
    "STREAM_TAG",
    "SUPERVISOR_TIMEOUT_ENV",
    "StreamSpec",
    "build_stream_definitions",
    "build_stream_job",
    "build_stream_sensor",
    "decide_stream_run",
    "stream_specs",
    "supervisor_gone",
    "write_heartbeat",
    "write_run_alive",
]

STREAM_TAG = "dccd/stream"
SENSOR_INTERVAL_S = 30
#: No sensor tick for this long means the supervisor (the daemon) is gone.
HEARTBEAT_TIMEOUT_S = 4 * SENSOR_INTERVAL_S
SENSOR_INTERVAL_ENV = "DCCD_STREAM_SENSOR_INTERVAL_S"
SUPERVISOR_TIMEOUT_ENV = "DCCD_STREAM_SUPERVISOR_TIMEOUT_S"
WATCH_INTERVAL_S = 2.0
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
_MAX_RETRIES_TAG = "dagster/max_retries"  # Dagster's run-retry tag (overrides run_retries)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream: its symbols, settings and every name derived from them."""

    exchange: str
    data_type: DataType
    symbols: tuple[Symbol, ...]
    span: Span | None = None
    book_depth: int = 20
    snapshot_interval_s: float = 10.0
    rest_url: str | None = None
    ws_url: str | None = None
    sensor_interval_s: int = SENSOR_INTERVAL_S
    #: No sensor tick for this long: the run stops by itself (None: 4 sensor intervals).
    supervisor_timeout_s: float | None = None

    @property
    def heartbeat_timeout_s(self) -> float:
        if self.supervisor_timeout_s is not None:
            return self.supervisor_timeout_s
        return 4.0 * self.sensor_interval_s

    @property
    def name(self) -> str:
        """``binance__trades__stream``, ``binance__ohlc_1m__stream``."""
        kind = self.data_type.value + (f"_{self.span.label}" if self.span else "")
        return f"{self.exchange}__{kind}__stream"

    @property
    def sensor_name(self) -> str:
        return f"{self.name}_sensor"

    def key(self, symbol: Symbol) -> DatasetKey:
        return DatasetKey(self.exchange, symbol, self.data_type, self.span)


def _env_seconds(env: Mapping[str, str], name: str) -> float | None:
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


def stream_specs(
    datasets: Sequence[DatasetSpec], env: Mapping[str, str] | None = None
) -> list[StreamSpec]:
    """Group the catalog's streamed datasets by (exchange, data type, span).

    ``env`` (default ``os.environ``) may set the supervision knobs (module docstring).
    """
    env = os.environ if env is None else env
    interval_s = _env_seconds(env, SENSOR_INTERVAL_ENV)
    timeout_s = _env_seconds(env, SUPERVISOR_TIMEOUT_ENV)
    groups: dict[tuple[str, DataType, Span | None], list[DatasetSpec]] = {}
    for ds in datasets:
        if ds.stream:
            groups.setdefault((ds.key.exchange, ds.key.data_type, ds.key.span), []).append(ds)
    specs = []
    for (exchange, data_type, span), members in groups.items():
        first = members[0]
        specs.append(
            StreamSpec(
                exchange=exchange,
                data_type=data_type,
                symbols=tuple(dict.fromkeys(m.key.symbol for m in members)),
                span=span,
                book_depth=first.book_depth or 20,
                snapshot_interval_s=first.snapshot_interval_s or 10.0,
                rest_url=first.rest_url,
                ws_url=first.ws_url,
                sensor_interval_s=max(1, round(interval_s)) if interval_s else SENSOR_INTERVAL_S,
                supervisor_timeout_s=timeout_s,
            )
        )
    return specs


# -- supervision (plain functions: testable against a real instance) ---------------------


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


def supervisor_gone(instance: DagsterInstance, spec: StreamSpec, now_s: float) -> str | None:
    """Why the run should stop (sensor off, no heartbeat), or None to go on."""
    if _sensor_stopped(instance, spec):
        return f"sensor {spec.sensor_name} was turned off"
    beat = _heartbeat(instance, spec)
    if beat is not None and now_s - beat > spec.heartbeat_timeout_s:
        return f"no sensor tick for {now_s - beat:.0f} s (is the Dagster daemon running?)"
    return None


def decide_stream_run(
    instance: DagsterInstance, spec: StreamSpec, now_s: float
) -> RunRequest | SkipReason:
    """One run per stream: skip while one is active; restart a dead one with backoff."""
    tag = {STREAM_TAG: spec.name}
    active = instance.get_run_records(filters=RunsFilter(tags=tag, statuses=_ACTIVE), limit=1)
    if active:
        run = active[0].dagster_run
        silent_s = _silent_s(instance, spec, active[0], now_s)
        if run.status is not DagsterRunStatus.STARTED or silent_s <= spec.heartbeat_timeout_s:
            return SkipReason(f"stream run {run.run_id} is active")
        liveness.fail_dead_run(
            instance,
            run,
            f"stream run {run.run_id} sent no sign of life for {silent_s:.0f} s: its worker "
            "is gone (killed with dagster dev, OOM, reboot); a new run heals the gap from REST",
            by=spec.sensor_name,
        )
        return RunRequest(run_key=f"{spec.name}:{now_s:.0f}", tags=tag)
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
    return RunRequest(run_key=f"{spec.name}:{now_s:.0f}", tags=tag)


# -- the run ------------------------------------------------------------------------------


def _materializations(spec: StreamSpec, report: FlushReport) -> list[AssetMaterialization]:
    events = []
    for symbol in spec.symbols:
        rep = report.per_symbol.get(str(symbol))
        if rep is None or (rep.rows == 0 and not report.final):
            continue
        key = spec.key(symbol)
        last_ts = rep.last_ts
        events.append(
            AssetMaterialization(
                asset_key=AssetKey(key.asset_key_path),
                partition=iso_date(last_ts) if last_ts is not None else None,
                metadata={
                    "rows": rep.rows,
                    "total_rows": rep.total_rows,
                    "last_ts": iso_datetime(last_ts) if last_ts is not None else "",
                    "lag_s": round(rep.lag_s, 3) if rep.lag_s is not None else -1.0,
                    "reconnects": report.reconnects,
                    "healed_gaps": rep.healed_gaps,
                    "healed_rows": rep.healed_rows,
                    "unhealed_gaps": rep.unhealed_gaps,
                    "resyncs": rep.resyncs,
                    "final": report.final,
                },
            )
        )
    return events


def run_stream_body(
    context: OpExecutionContext,
    spec: StreamSpec,
    store_resource: DccdStore,
    *,
    max_runtime_s: float | None = None,
    flush_interval_s: float = 5.0,
    gone: Callable[[], str | None] | None = None,
) -> FlushReport:
    """The op body: stream until the supervisor is gone, the run is terminated, or
    ``max_runtime_s``; every flush logs materializations."""
    instance = context.instance
    run_id = context.run_id
    gone_check = gone or (lambda: supervisor_gone(instance, spec, time.time()))

    def check() -> str | None:
        write_run_alive(instance, spec, run_id, time.time())
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:  # the sensor judged it dead: never run twice
            return f"this run was marked {run.status.value} meanwhile"
        return gone_check()

    log_lock = threading.Lock()

    def on_flush(report: FlushReport) -> None:
        with log_lock:
            for event in _materializations(spec, report):
                context.log_event(event)
            context.log.info(
                f"{spec.name}: {report.rows} rows (total {report.total_rows}), lag "
                f"{report.lag_s if report.lag_s is not None else '-'} s, reconnects "
                f"{report.reconnects}, healed gaps {report.healed_gaps}"
            )

    async def main() -> FlushReport:
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(WATCH_INTERVAL_S)
                reason = await asyncio.to_thread(check)
                if reason:
                    context.log.info(f"{spec.name}: stopping: {reason}")
                    stop.set()

        watcher = asyncio.create_task(watch())
        try:
            return await stream(
                spec.exchange,
                spec.symbols,
                spec.data_type,
                span=spec.span,
                store=store_resource.open(),
                book_depth=spec.book_depth,
                snapshot_interval_s=spec.snapshot_interval_s,
                flush_interval_s=flush_interval_s,
                stop=stop,
                on_flush=on_flush,
                max_runtime_s=max_runtime_s,
                rest_url=spec.rest_url,
                ws_url=spec.ws_url,
            )
        finally:
            watcher.cancel()

    return asyncio.run(main())


def build_stream_job(spec: StreamSpec) -> JobDefinition:
    """``binance__trades__stream``: one op, in-process, that runs the stream."""

    @op(name=f"{spec.name}_op", required_resource_keys={STORE_KEY})
    def run_stream(context):  # type: ignore[no-untyped-def]  # dagster reads the hint
        run_stream_body(context, spec, getattr(context.resources, STORE_KEY))

    @job(
        name=spec.name,
        executor_def=liveness.with_liveness(in_process_executor),
        tags={STREAM_TAG: spec.name, _MAX_RETRIES_TAG: "0"},
    )
    def stream_job() -> None:
        run_stream()

    return stream_job


def build_stream_sensor(spec: StreamSpec, stream_job: JobDefinition) -> SensorDefinition:
    """The supervisor: heartbeat, then at most one active run of ``stream_job``."""

    @sensor(
        name=spec.sensor_name,
        job=stream_job,
        minimum_interval_seconds=spec.sensor_interval_s,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Keeps one live {spec.data_type} stream of {spec.exchange} running",
    )
    def supervise(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        now_s = time.time()
        write_heartbeat(context.instance, spec, now_s)
        return decide_stream_run(context.instance, spec, now_s)

    return supervise


def build_stream_definitions(
    catalog: Catalog,
) -> tuple[list[JobDefinition], list[SensorDefinition]]:
    """A job and a sensor per stream of the catalog."""
    jobs, sensors = [], []
    for spec in stream_specs(catalog.datasets):
        stream_job = build_stream_job(spec)
        jobs.append(stream_job)
        sensors.append(build_stream_sensor(spec, stream_job))
    return jobs, sensors
