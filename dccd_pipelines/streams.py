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
* every flush with rows logs an ``AssetMaterialization`` on the dataset asset's day
  partition (rows, last ts, lag, reconnects, healed gaps, ``connected``,
  ``last_message_age_s``); a connection change is logged the moment it happens ("not
  connected (last error: ...; retrying in 2 s, 3 attempts)");
* a run never ends green having received nothing, nor after stopping while
  disconnected for over ``OUTAGE_FAIL_S`` (``stream_end_problem``);
* reloads: every sensor tick also publishes its catalog's streams (name -> spec
  fingerprint); a run whose stream changed stops so that the next tick restarts it with
  the new settings, one whose stream left the catalog stops saying so, and with no
  stream sensor left the run reads the catalog file for the reason (``stop_reason``);
* checks: the run evaluates the asset checks its datasets declare on the day
  partitions it writes (first flush, every ``DCCD_STREAM_CHECK_INTERVAL_S``, day close,
  stop), so the UI shows a check status per streamed day.

Three knobs, read from the environment when the definitions are built (the code server
and every run worker build them, so the sensor and the run agree), for deployments and
tests that need a faster supervisor; the defaults suit production:

* ``DCCD_STREAM_SENSOR_INTERVAL_S`` (default ``SENSOR_INTERVAL_S`` = 30): the sensor's
  ``minimum_interval_seconds`` (the daemon evaluates sensors at most every ~5 s);
* ``DCCD_STREAM_SUPERVISOR_TIMEOUT_S`` (default 4 x the sensor interval): how long a run
  goes on without a sensor tick before it stops by itself;
* ``DCCD_STREAM_CHECK_INTERVAL_S`` (default ``CHECK_INTERVAL_S`` = 900): how often a
  stream run evaluates its datasets' checks on the current day.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
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

from dccd_core.catalog import Catalog, DatasetSpec
from dccd_core.domain import (
    DatasetKey,
    DataType,
    Span,
    Symbol,
    iso_date,
    iso_datetime,
)
from dccd_core.operations.stream import FlushReport, stream
from dccd_core.transport.ws import WsStatus

from . import liveness
from .store import STORE_KEY, DccdStore

__all__ = [
    "CHECK_INTERVAL_ENV",
    "CHECK_INTERVAL_S",
    "HEARTBEAT_TIMEOUT_S",
    "OUTAGE_FAIL_S",
    "SENSOR_INTERVAL_ENV",
    "SENSOR_INTERVAL_S",
    "SPEC_TAG",
    "STREAM_TAG",
    "SUPERVISOR_TIMEOUT_ENV",
    "StreamSpec",
    "build_stream_definitions",
    "build_stream_job",
    "build_stream_sensor",
    "decide_stream_run",
    "describe_flush",
    "stop_reason",
    "stream_end_problem",
    "stream_specs",
    "supervisor_gone",
    "write_heartbeat",
    "write_run_alive",
    "write_stream_registry",
]

STREAM_TAG = "dccd/stream"
#: The fingerprint of the spec a stream run was requested for (``StreamSpec.fingerprint``).
SPEC_TAG = "dccd/stream_spec"
SENSOR_INTERVAL_S = 30
#: No sensor tick for this long means the supervisor (the daemon) is gone.
HEARTBEAT_TIMEOUT_S = 4 * SENSOR_INTERVAL_S
SENSOR_INTERVAL_ENV = "DCCD_STREAM_SENSOR_INTERVAL_S"
SUPERVISOR_TIMEOUT_ENV = "DCCD_STREAM_SUPERVISOR_TIMEOUT_S"
CHECK_INTERVAL_ENV = "DCCD_STREAM_CHECK_INTERVAL_S"
#: The stream run evaluates its datasets' checks on the current day this often.
CHECK_INTERVAL_S = 900.0
WATCH_INTERVAL_S = 2.0
BACKOFF_BASE_S = 15.0
BACKOFF_CAP_S = 600.0
#: A run that stops after this long without a connection ends as a failure.
OUTAGE_FAIL_S = 60.0
_ACTIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
_HEARTBEAT_PREFIX = "dccd_stream_heartbeat:"
_REGISTRY_PREFIX = "dccd_streams:"
log = logging.getLogger("dccd.streams")
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
    #: The catalog file the stream comes from ("": unknown); scopes the stream registry.
    catalog: str = ""
    #: How often the run evaluates the asset checks on the current day partition (they
    #: also run when a day closes and when the run stops).
    check_interval_s: float = CHECK_INTERVAL_S

    @property
    def fingerprint(self) -> str:
        """What the run streams (symbols, endpoints, book settings): a change in the
        catalog changes it, and the sensor's new runs carry the new one."""
        text = repr((
            self.name, tuple(str(s) for s in self.symbols), self.book_depth,
            self.snapshot_interval_s, self.rest_url, self.ws_url,
        ))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

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


def stream_specs(
    datasets: Sequence[DatasetSpec], env: Mapping[str, str] | None = None
) -> list[StreamSpec]:
    """Group the catalog's streamed datasets by (exchange, data type, span).

    ``env`` (default ``os.environ``) may set the supervision knobs (module docstring).
    """
    env = os.environ if env is None else env
    interval_s = liveness.env_seconds(env, SENSOR_INTERVAL_ENV)
    timeout_s = liveness.env_seconds(env, SUPERVISOR_TIMEOUT_ENV)
    check_s = liveness.env_seconds(env, CHECK_INTERVAL_ENV) or CHECK_INTERVAL_S
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
                check_interval_s=check_s,
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

    from .catalog import load_catalog

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


# -- the run ------------------------------------------------------------------------------


def _materializations(spec: StreamSpec, report: FlushReport) -> list[AssetMaterialization]:
    events = []
    age = report.last_message_age_s
    for symbol in spec.symbols:
        rep = report.per_symbol.get(str(symbol))
        # No rows, no materialization: an empty one would make a dead stream look fresh.
        if rep is None or rep.total_rows == 0 or (rep.rows == 0 and not report.final):
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
                    "connected": report.connected,
                    "last_message_age_s": round(age, 3) if age is not None else "never",
                    "final": report.final,
                },
            )
        )
    return events


def describe_flush(spec: StreamSpec, report: FlushReport) -> str:
    """The run-log line of one flush; it leads with the trouble when not connected."""
    age = report.last_message_age_s
    last = f"{age:.1f} s ago" if age is not None else "never"
    lag = f"{report.lag_s:.3f} s" if report.lag_s is not None else "-"
    figures = (
        f"{report.rows} rows (total {report.total_rows}), last message {last}, lag {lag}, "
        f"reconnects {report.reconnects}, healed gaps {report.healed_gaps}"
    )
    if report.connected:
        return f"{spec.name}: {figures}"
    down = f" for {report.down_s:.0f} s" if report.down_s is not None else ""
    retry = (
        f"retrying in {report.retry_in_s:.0f} s" if report.retry_in_s is not None else "retrying"
    )
    return (
        f"{spec.name}: NOT CONNECTED{down} (last error: {report.last_error or 'none yet'}; "
        f"{retry}, {report.connect_attempts} attempts); {figures}"
    )


def stream_end_problem(spec: StreamSpec, final: FlushReport) -> str | None:
    """Why a stream run that stopped must not end green, or None.

    * it received no data message at all (never connected, or connected to nothing);
    * it was not connected at the stop, for longer than ``OUTAGE_FAIL_S``: the data of
      that outage is missing until the next run heals it from REST.

    A run that lost its connection and got it back is green (the gap was healed); a
    connection that never returns fails the run in the WebSocket client after its
    retry budget (``WsConfig.max_attempts``), and the sensor starts a new run.
    """
    if final.messages == 0:
        if final.connect_attempts or not final.connected:
            why = (
                f"never connected to {spec.exchange} (last error: "
                f"{final.last_error or 'none'}); check ws_url and the network"
            )
        else:
            why = (
                f"connected, but no message came for {', '.join(map(str, spec.symbols))}; "
                "check the symbols and the ws_url"
            )
        return f"{spec.name} received nothing in {final.elapsed_s:.0f} s: {why}"
    if not final.connected and (final.down_s or 0.0) > OUTAGE_FAIL_S:
        return (
            f"{spec.name} had lost its connection {final.down_s:.0f} s before it stopped "
            f"(last error: {final.last_error or 'none'}); the next run heals the gap from REST"
        )
    return None


class _StreamChecks:
    """Evaluates the streamed datasets' asset checks on their day partitions: at the
    run's first flush with rows, every ``spec.check_interval_s`` on the current day, once
    more when a day closes (the first flush past midnight UTC) and at the stop. Audits
    run in a worker thread, never on the stream's event loop; each result is logged as
    an ``AssetCheckEvaluation``."""

    def __init__(
        self, spec: StreamSpec, store_root: str, log: Callable[[AssetCheckEvaluation], None]
    ) -> None:
        self.spec = spec
        self.store_root = store_root
        self.log = log
        self.days: dict[str, str] = {}  # symbol -> the day of its last row
        self.next_s = time.monotonic() + spec.check_interval_s
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dccd-checks")

    def after_flush(self, report: FlushReport) -> None:
        due: list[tuple[str, str]] = []
        for symbol, rep in report.per_symbol.items():
            if rep.last_ts is None or rep.total_rows == 0:
                continue
            day = iso_date(rep.last_ts)
            before = self.days.get(symbol)
            if before is None:
                # this run's first rows: the UI shows a check status for a partition only
                # while its latest materialization and the evaluation share a run
                due.append((symbol, day))
            elif before != day:
                due.append((symbol, before))  # that day is over: its last word
            self.days[symbol] = day
        if report.final or time.monotonic() >= self.next_s:
            self.next_s = time.monotonic() + self.spec.check_interval_s
            due.extend(self.days.items())
        for symbol, day in due:
            self.worker.submit(self._evaluate, symbol, day)

    def _evaluate(self, symbol: str, day: str) -> None:
        from .checks import stream_check_evaluations

        key = self.spec.key(Symbol.parse(symbol))
        try:
            evaluations = stream_check_evaluations(self.store_root, key, day)
        except Exception as exc:  # a check must never stop the stream
            log.warning("%s: checks of %s not evaluated: %s", self.spec.name, day, exc)
            return
        for evaluation in evaluations:
            self.log(evaluation)

    def close(self) -> None:
        """Wait for the evaluations in progress (the stop's included)."""
        self.worker.shutdown(wait=True)


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
    # What the sensor asked for (a run launched by hand: what this code streams).
    fingerprint = context.run.tags.get(SPEC_TAG) or spec.fingerprint
    failed_stop: list[str] = []

    def gone_check() -> str | None:
        if gone is not None:
            return gone()
        reason = stop_reason(instance, spec, time.time(), fingerprint)
        if reason is None:
            return None
        if reason[1]:
            failed_stop.append(reason[0])
        return reason[0]

    def check() -> str | None:
        write_run_alive(instance, spec, run_id, time.time())
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:  # the sensor judged it dead: never run twice
            return f"this run was marked {run.status.value} meanwhile"
        return gone_check()

    log_lock = threading.Lock()

    def log_check(evaluation: AssetCheckEvaluation) -> None:
        with log_lock:  # log_event takes check evaluations too; its type hint lags
            context.log_event(evaluation)  # type: ignore[arg-type]

    checks = _StreamChecks(spec, store_resource.root, log_check)

    def on_flush(report: FlushReport) -> None:
        with log_lock:
            for event in _materializations(spec, report):
                context.log_event(event)
            line = describe_flush(spec, report)
            (context.log.info if report.connected else context.log.warning)(line)
        checks.after_flush(report)

    def on_status(line: str, status: WsStatus) -> None:
        with log_lock:
            (context.log.info if status.connected else context.log.warning)(line)

    async def main() -> FlushReport:
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(WATCH_INTERVAL_S)
                reason = await asyncio.to_thread(check)
                if reason:
                    with log_lock:
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
                on_status=on_status,
            )
        finally:
            watcher.cancel()

    try:
        final = asyncio.run(main())
    finally:
        checks.close()
    problem = stream_end_problem(spec, final)
    if failed_stop:
        problem = f"{spec.name} stopped: {failed_stop[0]}"
    if problem is not None:
        # dagster's Failure: the UI shows this one line, not a traceback.
        raise Failure(description=problem, metadata=_health_metadata(final), allow_retries=False)
    return final


def _health_metadata(report: FlushReport) -> dict[str, Any]:
    age = report.last_message_age_s
    return {
        "connected": report.connected,
        "messages": report.messages,
        "last_message_age_s": round(age, 3) if age is not None else "never",
        "last_error": report.last_error,
        "connect_attempts": report.connect_attempts,
        "total_rows": report.total_rows,
    }


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


def build_stream_sensor(
    spec: StreamSpec,
    stream_job: JobDefinition,
    catalog_streams: Sequence[StreamSpec] | None = None,
) -> SensorDefinition:
    """The supervisor: heartbeat and the catalog's stream registry (``catalog_streams``,
    default just ``spec``), then at most one active run of ``stream_job``."""
    registry = list(catalog_streams) if catalog_streams is not None else [spec]

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
        write_stream_registry(context.instance, registry, now_s)
        return decide_stream_run(context.instance, spec, now_s)

    return supervise


def build_stream_definitions(
    catalog: Catalog,
) -> tuple[list[JobDefinition], list[SensorDefinition]]:
    """A job and a sensor per stream of the catalog."""
    jobs, sensors = [], []
    specs = [replace(s, catalog=str(catalog.path)) for s in stream_specs(catalog.datasets)]
    for spec in specs:
        stream_job = build_stream_job(spec)
        jobs.append(stream_job)
        sensors.append(build_stream_sensor(spec, stream_job, specs))
    return jobs, sensors
