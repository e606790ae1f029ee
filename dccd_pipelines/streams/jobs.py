"""A stream's Dagster definitions: its job (one in-process op running the stream) and
the sensor that supervises it; ``build_stream_definitions`` for every catalog stream."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from dagster import (
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    in_process_executor,
    job,
    op,
    sensor,
)

from dccd_core.catalog import Catalog

from .. import liveness
from ..store import STORE_KEY
from .run import run_stream_body
from .spec import STREAM_TAG, StreamSpec, stream_specs
from .supervision import decide_stream_run, write_heartbeat, write_stream_registry

__all__ = ["build_stream_definitions", "build_stream_job", "build_stream_sensor"]

_MAX_RETRIES_TAG = "dagster/max_retries"  # Dagster's run-retry tag (overrides run_retries)


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
