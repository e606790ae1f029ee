"""A stream-only dataset (liquidations) in Dagster: an asset its stream reports, which
nothing can materialize.

Why not the fetched asset of ``assets.py``: its op backfills partitions over REST, and
a liquidation has no REST history (``NO_REST_HISTORY``), so its materialize button,
its backfills, its job and an update schedule could only ever fail. A stream-only
dataset is instead declared as an ``AssetSpec`` (a non-executable asset: Dagster shows
it without a materialize action and refuses ``dagster asset materialize`` of it) with
the same key, daily partitions, group, kinds and ``dccd/*`` metadata, so

* the stream run's per-flush ``AssetMaterialization`` of the day's partition lands on
  it (``streams/reports.py``) and its page shows what the stream stored;
* its checks (``no_holes`` shows each reconnect gap, never healed) run in an op of
  their own (``checks.build_dataset_checks``), like a derived dataset's;
* it has no dataset job and no update schedule; its live collection is the stream
  job and sensor (``streams/``).
"""

from __future__ import annotations

from dagster import AssetSpec, Definitions

from dccd_core.catalog import DatasetSpec

from .checks import build_dataset_checks
from .declaration import asset_key, daily_partitions
from .io_manager import dataset_metadata

__all__ = ["build_stream_only_asset", "stream_only_definitions"]


def build_stream_only_asset(spec: DatasetSpec) -> AssetSpec:
    """The non-materializable asset of a stream-only dataset (see the module docstring)."""
    key = spec.key
    return AssetSpec(
        key=asset_key(key),
        group_name=key.exchange,
        kinds={"parquet", "polars"},
        tags={"exchange": key.exchange, "data_type": key.data_type.value, "dccd/stream_only": ""},
        description=(
            f"{key.data_type} of {key.symbol} on {key.exchange}: collected only by the live "
            f"stream (job {key.exchange}__{key.data_type}__stream, kept running by its "
            "sensor), which records each "
            "partition it writes; the exchange serves no history to materialize or backfill, "
            "and a reconnect gap stays a hole (no_holes check)."
        ),
        metadata=dataset_metadata(key),
        partitions_def=daily_partitions(spec),
    )


def stream_only_definitions(spec: DatasetSpec) -> Definitions:
    """The asset and its checks' op; no job, no schedule."""
    return Definitions(
        assets=[build_stream_only_asset(spec)], asset_checks=[build_dataset_checks(spec)]
    )
