"""The stream run: the op body that streams until its supervisor is gone, the run is
terminated or ``max_runtime_s``, logging every flush and the streamed days' checks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable

from dagster import AssetCheckEvaluation, Failure, OpExecutionContext

from dccd_core.domain import Symbol, iso_date
from dccd_core.operations.stream import FlushReport, stream
from dccd_core.transport.ws import WsStatus

from ..store import DccdStore
from .reports import describe_flush, flush_materializations, health_metadata, stream_end_problem
from .spec import SPEC_TAG, StreamSpec
from .supervision import stop_reason, write_run_alive

__all__ = ["WATCH_INTERVAL_S", "run_stream_body"]

#: The run writes its sign of life and watches its supervisor this often.
WATCH_INTERVAL_S = 2.0
log = logging.getLogger("dccd.streams")


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
        from ..checks import stream_check_evaluations

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
            for event in flush_materializations(spec, report):
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
                spec.exchange, spec.symbols, spec.data_type, span=spec.span,
                store=store_resource.open(), book_depth=spec.book_depth,
                snapshot_interval_s=spec.snapshot_interval_s, flush_interval_s=flush_interval_s,
                stop=stop, on_flush=on_flush, on_status=on_status, max_runtime_s=max_runtime_s,
                rest_url=spec.rest_url, ws_url=spec.ws_url,
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
        raise Failure(description=problem, metadata=health_metadata(final), allow_retries=False)
    return final
