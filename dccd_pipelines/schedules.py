"""One job per dataset and the schedule that keeps its latest partition fresh.

Why schedules rather than ``AutomationCondition.on_cron``: the update is "refresh the
latest partition on this cron", which is exactly a schedule, and a schedule also
covers the day boundary honestly: the first tick after midnight requests yesterday
and today in one run (a single-run range), so the last minutes of yesterday are not
left behind when the latest partition moves on. ``on_cron`` would wait for the whole
of a partition and needs the automation sensor as a second moving part. Schedules are
created ``RUNNING``, so ``dagster dev`` refreshes every dataset with no manual step.

Job names are the asset key joined by ``__`` (``binance__ohlc__btc_usdt_1m``), so
``dagster job launch -j binance__ohlc__btc_usdt_1m --tags '{"dagster/partition": "..."}'``
works from the command line.
"""


from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from dccd_core.catalog import DatasetSpec

from .declaration import asset_key

__all__ = [
    "build_dataset_job",
    "build_resolved_job",
    "build_update_schedule",
    "update_days",
    "update_run_request",
]

_RANGE_START_TAG = "dagster/asset_partition_range_start"
_RANGE_END_TAG = "dagster/asset_partition_range_end"


def build_dataset_job(spec: DatasetSpec) -> UnresolvedAssetJobDefinition:
    """The job materializing this one dataset (and running its checks)."""
    return define_asset_job(
        name=spec.key.job_name,
        selection=AssetSelection.assets(asset_key(spec.key)),
        description=f"Materialize {spec.key} for the selected day(s).",
        tags={"exchange": spec.key.exchange, "data_type": spec.key.data_type.value},
    )


def build_resolved_job(
    spec: DatasetSpec,
    definitions: Sequence[AssetsDefinition],
    resources: Mapping[str, Any],
) -> JobDefinition:
    """``build_dataset_job`` resolved against the dataset's own asset (and checks op).

    Dagster resolves an unresolved asset job against the whole asset graph, which costs
    O(datasets) per job, so O(datasets^2) for the catalog (a minute for a thousand
    datasets); a dataset job only ever needs its own asset, so it is resolved here
    against that, linearly.
    """
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

    resource_defs = {
        name: res.get_resource_definition() if hasattr(res, "get_resource_definition") else res
        for name, res in resources.items()
    }
    graph = AssetGraph.from_assets(list(definitions))
    return build_dataset_job(spec).resolve(asset_graph=graph, resource_defs=resource_defs)


def update_days(cron: str, scheduled: datetime, start: date) -> tuple[date, date]:
    """The days a tick at ``scheduled`` refreshes: today, plus yesterday when the
    previous tick fell on yesterday (so yesterday's tail gets fetched once complete)."""
    from dagster._utils.schedules import reverse_cron_string_iterator

    scheduled = scheduled.astimezone(UTC)
    today = scheduled.date()
    previous = next(reverse_cron_string_iterator(scheduled.timestamp() - 1, cron, "UTC"))
    first = min(previous.astimezone(UTC).date(), today)
    first = max(first, today - timedelta(days=1), start)
    return first, today


def update_run_request(spec: DatasetSpec, scheduled: datetime) -> RunRequest | None:
    """The RunRequest of an update tick (None before the dataset's start)."""
    assert spec.update_cron is not None
    first, last = update_days(spec.update_cron, scheduled, spec.start)
    if last < spec.start:
        return None
    run_key = f"{spec.key.job_name}@{scheduled.astimezone(UTC).isoformat()}"
    tags = {"dccd/trigger": "update"}
    if first == last:
        return RunRequest(run_key=run_key, partition_key=last.isoformat(), tags=tags)
    return RunRequest(
        run_key=run_key,
        tags={**tags, _RANGE_START_TAG: first.isoformat(), _RANGE_END_TAG: last.isoformat()},
    )


def build_update_schedule(
    spec: DatasetSpec, job: UnresolvedAssetJobDefinition | JobDefinition
) -> ScheduleDefinition:
    """A default-running schedule on the catalog's cron (the spec must have one)."""
    if spec.update_cron is None:
        raise ValueError(f"{spec.key} has no update cron")

    @schedule(
        name=f"{spec.key.job_name}__update",
        cron_schedule=spec.update_cron,
        job=job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Refresh the latest partition of {spec.key} on `{spec.update_cron}`.",
    )
    def _update(context: ScheduleEvaluationContext) -> RunRequest | list[RunRequest]:
        request = update_run_request(spec, context.scheduled_execution_time)
        return request if request is not None else []

    return _update
