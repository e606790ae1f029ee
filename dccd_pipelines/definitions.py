"""The one ``Definitions`` of the dccd Dagster project, assembled from the catalog.

``dagster dev -m dccd_pipelines.definitions`` (or ``-w workspace.yaml``) loads ``defs``.
The catalog is read when ``build_definitions`` runs, never at import of the other
modules; a bad catalog raises one ``ConfigError`` that Dagster shows as the load error.

Each dataset brings its own definitions (``assets.dataset_definitions``: asset,
checks, job, schedule); what spans the catalog (streams, sensors, resources, the
executor) is ``catalog_definitions``; ``Definitions.merge`` joins them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import Definitions, multi_or_in_process_executor

from dccd_core.catalog import Catalog

from .alerts import build_alert_sensors
from .assets import dataset_definitions
from .catalog import load_catalog
from .declaration import asset_key
from .executor import one_step_in_process
from .liveness import build_dead_run_sensor, liveness_timeout_s, owned_by, with_liveness
from .pools import build_pool_sensor
from .resources import dccd_resources
from .streams import build_stream_definitions, stream_specs

__all__ = ["build_definitions", "catalog_definitions", "defs"]


def build_definitions(
    catalog: Catalog | None = None, path: str | os.PathLike[str] | None = None
) -> Definitions:
    """Every dataset's definitions (asset, checks, job, schedule) merged with the
    catalog-wide ones."""
    catalog = catalog if catalog is not None else load_catalog(path)
    resources = dccd_resources(str(catalog.store_root))
    datasets = [dataset_definitions(spec, resources) for spec in catalog.datasets]
    return Definitions.merge(*datasets, catalog_definitions(catalog, resources))


def catalog_definitions(catalog: Catalog, resources: Mapping[str, Any]) -> Definitions:
    """The stream jobs and sensors, the pool-limit, dead-run and (with ``alerts:``) alert
    sensors, the resources and the liveness-wrapped executor."""
    stream_jobs, stream_sensors = build_stream_definitions(catalog)
    # Every run writes its sign of life; dccd_dead_runs fails the silent ones and frees
    # their pool slots (liveness.py).
    timeout_s = liveness_timeout_s()
    job_names = [spec.key.job_name for spec in catalog.datasets] + [j.name for j in stream_jobs]
    asset_keys = [asset_key(spec.key) for spec in catalog.datasets]
    dead_runs = build_dead_run_sensor(job_names, asset_keys, timeout_s)
    alerts = build_alert_sensors(catalog.alerts, stream_specs(catalog.datasets),
                                 str(catalog.store_root), owned_by(job_names, asset_keys))
    return Definitions(
        jobs=stream_jobs,
        sensors=[*stream_sensors, build_pool_sensor(catalog), dead_runs, *alerts],
        resources=resources,
        # one-step runs (a dataset's, a partition range's) skip the child process
        executor=with_liveness(one_step_in_process(multi_or_in_process_executor), timeout_s),
    )


defs = build_definitions()
