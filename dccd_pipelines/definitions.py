"""The one ``Definitions`` of the dccd Dagster project, assembled from the catalog.

``dagster dev -m dccd_pipelines.definitions`` (or ``-w workspace.yaml``) loads ``defs``.
The catalog is read when ``build_definitions`` runs, never at import of the other
modules; a bad catalog raises one ``ConfigError`` that Dagster shows as the load error.
"""

from __future__ import annotations

import os

from dagster import Definitions, multi_or_in_process_executor

from dccd_core.catalog import Catalog

from .alerts import build_alert_sensors
from .assets import build_dataset_assets
from .catalog import load_catalog
from .checks import build_dataset_checks
from .liveness import build_dead_run_sensor, liveness_timeout_s, owned_by, with_liveness
from .pools import build_pool_sensor
from .resources import dccd_resources
from .schedules import build_resolved_job, build_update_schedule
from .streams import build_stream_definitions, stream_specs

__all__ = ["build_definitions", "defs"]


def build_definitions(
    catalog: Catalog | None = None, path: str | os.PathLike[str] | None = None
) -> Definitions:
    """Assets, checks, one job and (with a cron) one schedule per dataset, stream sensors,
    the pool-limit, dead-run and (with ``alerts:``) alert sensors, the resources and the
    liveness-wrapped executor."""
    catalog = catalog if catalog is not None else load_catalog(path)
    specs = catalog.datasets
    resources = dccd_resources(str(catalog.store_root))
    assets = build_dataset_assets(specs)
    # Fetched datasets carry their checks in their asset op; derived candles do not.
    checks = {spec.key: build_dataset_checks(spec) for spec in specs if spec.derive_from}
    jobs = [
        build_resolved_job(spec, [asset, *([checks[spec.key]] if spec.key in checks else [])],
                           resources)
        for spec, asset in zip(specs, assets, strict=True)
    ]
    schedules = [
        build_update_schedule(spec, job)
        for spec, job in zip(specs, jobs, strict=True)
        if spec.update_cron
    ]
    stream_jobs, stream_sensors = build_stream_definitions(catalog)
    # Every run writes its sign of life; dccd_dead_runs fails the silent ones and frees
    # their pool slots (liveness.py).
    timeout_s = liveness_timeout_s()
    job_names = [job.name for job in [*jobs, *stream_jobs]]
    asset_keys = [asset_key for asset in assets for asset_key in asset.keys]
    dead_runs = build_dead_run_sensor(job_names, asset_keys, timeout_s)
    alerts = build_alert_sensors(catalog.alerts, stream_specs(catalog.datasets),
                                 str(catalog.store_root), owned_by(job_names, asset_keys))
    return Definitions(
        assets=assets,
        asset_checks=list(checks.values()),
        jobs=[*jobs, *stream_jobs],
        schedules=schedules,
        sensors=[*stream_sensors, build_pool_sensor(catalog), dead_runs, *alerts],
        resources=resources,
        executor=with_liveness(multi_or_in_process_executor, timeout_s),
    )

defs = build_definitions()
