"""One dataset's definitions: its asset, its checks, its job and (with a cron) its
update schedule, as one ``Definitions`` that ``definitions.build_definitions`` merges.

https://docs.dagster.io/api/dagster/definitions (``Definitions.merge``)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetChecksDefinition, Definitions

from dccd_core.catalog import DatasetSpec

from .assets import build_dataset_asset
from .checks import build_dataset_checks
from .schedules import build_resolved_job, build_update_schedule

__all__ = ["dataset_definitions"]


def dataset_definitions(spec: DatasetSpec, resources: Mapping[str, Any]) -> Definitions:
    """The definitions of one dataset of the catalog (``resources``: the ones every
    dccd definition shares, which its job is resolved against)."""
    asset = build_dataset_asset(spec)
    # A fetched asset carries its checks in its own op (one op per dataset, see
    # assets.py); a derived one has none to carry them, so they get their own op.
    checks: list[AssetChecksDefinition] = (
        [build_dataset_checks(spec)] if spec.derive_from is not None else []
    )
    job = build_resolved_job(spec, [asset, *checks], resources)
    schedules = [build_update_schedule(spec, job)] if spec.update_cron else []
    return Definitions(assets=[asset], asset_checks=checks, jobs=[job], schedules=schedules)
