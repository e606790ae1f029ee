"""The asset factory: one Dagster asset per ``DatasetSpec``.

Every name is derived from the spec's ``DatasetKey``: asset key
``binance/ohlc/btc_usdt_1m``, group ``binance``, pool ``dccd_binance``. Partitions
are daily from the dataset's start, today's in-progress day included
(``end_offset=1``); ``BackfillPolicy.single_run()`` makes a range of partitions one
run and one paginated fetch. The body is thin: partition range -> time window ->
``execution.run_backfill`` -> metadata: the run's counters on the output, and each
day's own figures (rows, first/last ts, holes) on that day's materialization
(``context.add_asset_metadata(..., partition_key=day)``), never the range's total.
See ``io_manager.py`` for how rows reach the lake (chunked during the run, never
through the output value).

https://docs.dagster.io/guides/build/partitions-and-backfills/backfilling-data
"""


import functools
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    FreshnessPolicy,
    MetadataValue,
    Output,
    multi_asset,
)

from dccd_core.catalog import DatasetSpec
from dccd_core.domain import DatasetKey, DataType, iso_datetime

from .checks import dataset_check_specs, evaluate_checks
from .execution import RunSummary, partition_window, run_backfill, summarize
from .io_manager import IO_MANAGER_KEY, Committed, dataset_metadata
from .resources import STORE_KEY, DccdStore

__all__ = [
    "add_day_metadata",
    "asset_key",
    "build_dataset_asset",
    "build_dataset_assets",
    "daily_partitions",
    "day_metadata",
    "freshness_policy",
    "materialize_range",
    "output_name",
    "summary_metadata",
]

_WHAT = {
    DataType.OHLC: "candles",
    DataType.TRADES: "trades (taker side)",
    DataType.BOOK: "order-book snapshots",
}


def asset_key(key: DatasetKey) -> AssetKey:
    """``AssetKey(["binance", "ohlc", "btc_usdt_1m"])``."""
    return AssetKey(key.asset_key_path)


def daily_partitions(spec: DatasetSpec) -> DailyPartitionsDefinition:
    """Daily UTC partitions from the dataset's start; today's (in progress) included."""
    return _daily_from(spec.start.isoformat())


@functools.cache
def _daily_from(start_date: str) -> DailyPartitionsDefinition:
    # One object per start date: datasets sharing it share one partitions definition.
    return DailyPartitionsDefinition(start_date=start_date, end_offset=1)


@functools.cache
def _cron_interval(cron: str) -> timedelta:
    # Dagster samples a year of ticks (~40 ms); a catalog repeats a few crons.
    from dagster._utils.schedules import get_smallest_cron_interval

    return get_smallest_cron_interval(cron)


def freshness_policy(spec: DatasetSpec) -> FreshnessPolicy | None:
    """Stale after two missed update ticks (warn) or four (fail); none without a cron.

    Dagster 1.13's ``FreshnessPolicy`` (evaluated by the instance's freshness daemon,
    shown on the asset page) supersedes ``build_last_update_freshness_checks``.
    """
    if spec.update_cron is None:
        return None
    interval = _cron_interval(spec.update_cron)
    warn = max(interval * 2, timedelta(minutes=1))
    return FreshnessPolicy.time_window(fail_window=max(interval * 4, warn * 2), warn_window=warn)


def _description(spec: DatasetSpec) -> str:
    key = spec.key
    span = f" {key.span}" if key.span else ""
    update = f" Refreshed on cron `{spec.update_cron}`." if spec.update_cron else ""
    stream = " Also collected live (stream sensor)." if spec.stream else ""
    return (
        f"{key.exchange} {key.symbol}{span} {_WHAT[key.data_type]}, daily partitions from "
        f"{spec.start} (UTC). A partition range is one paginated backfill written to the "
        f"Parquet lake in bounded chunks.{update}{stream}"
    )


def summary_metadata(summary: RunSummary) -> dict[str, Any]:
    """The run's own figures as Dagster metadata, the same on every partition it
    materializes, so each name says ``run_`` (a day's figures: ``day_metadata``)."""
    days = summary.days
    first_day = days[0].partition if days else ""
    last_day = days[-1].partition if days else ""
    span = first_day if first_day == last_day else f"{first_day}...{last_day}"
    return {
        "run_partitions": MetadataValue.text(f"{span} ({len(days)} day(s))"),
        "run_rows_fetched": MetadataValue.int(summary.rows_fetched),
        "run_rows_new": MetadataValue.int(summary.rows_new),
        "run_requests": MetadataValue.int(summary.requests),
        "run_retries": MetadataValue.int(summary.retries),
        "run_rate_limit_pauses": MetadataValue.int(summary.rate_limit_pauses),
        "run_files_written": MetadataValue.int(len(summary.files)),
        # The file list goes to the run log, not here: a range run repeats its metadata
        # on every partition's materialization event (365 copies for a year).
    }


def day_metadata(summary: RunSummary) -> dict[str, dict[str, Any]]:
    """Each daily partition's own figures (rows, first/last ts, holes, last rows) as
    Dagster metadata, by partition key."""
    out: dict[str, dict[str, Any]] = {}
    for day in summary.days:
        values = day.as_dict()
        out[day.partition] = {
            "dagster/row_count": MetadataValue.int(day.row_count),
            "row_count": MetadataValue.int(day.row_count),
            "window_start": MetadataValue.text(values["window_start"]),
            "window_end": MetadataValue.text(values["window_end"]),
            "first_ts": MetadataValue.text(values["first_ts"] or ""),
            "last_ts": MetadataValue.text(values["last_ts"] or ""),
            "holes": MetadataValue.int(len(day.holes)),
            "holes_first": MetadataValue.json(values["holes_first"]),
            "preview": MetadataValue.md(day.preview_md),
        }
    return out


def add_day_metadata(
    context: AssetExecutionContext, key: DatasetKey, days: dict[str, dict[str, Any]]
) -> None:
    """Give each partition of the run its own figures (Dagster merges them over the
    output's metadata on that partition's materialization event)."""
    for partition, metadata in days.items():
        context.add_asset_metadata(metadata, asset_key=asset_key(key), partition_key=partition)


def materialize_range(
    spec: DatasetSpec,
    first_day: str,
    last_day: str,
    store_resource: DccdStore,
    log: Any,
    *,
    now_ts: int | None = None,
) -> tuple[Committed, dict[str, Any], dict[str, dict[str, Any]]]:
    """Backfill the days ``first_day..last_day`` of ``spec``; the receipt, the run's
    metadata and each day's (``summary_metadata``, ``day_metadata``)."""
    start_ts, end_ts = partition_window(first_day, last_day, now_ts)
    store = store_resource.open()
    result = run_backfill(spec, start_ts, end_ts, store, log.info)
    summary = summarize(result, store, spec.key, start_ts, end_ts, now_ts=now_ts)
    log.info(
        f"{spec.key}: {summary.rows_fetched:,} rows fetched, {summary.rows_new:,} new, "
        f"{summary.row_count:,} stored in {iso_datetime(start_ts)} -> {iso_datetime(end_ts)}, "
        f"{summary.requests} requests, {len(summary.holes)} holes"
    )
    if summary.files:
        log.info(f"{spec.key}: files written: {', '.join(summary.files)}")
    receipt = Committed(spec.key, start_ts, end_ts, summary.row_count, summary.files)
    return receipt, summary_metadata(summary), day_metadata(summary)


def output_name(key: DatasetKey) -> str:
    """The op output of a dataset: ``binance__ohlc__btc_usdt_1m``."""
    return key.job_name


def build_dataset_asset(spec: DatasetSpec) -> AssetsDefinition:
    """The asset of one dataset (see the module docstring); candles listed under
    ``derive:`` get the derived-candle asset of ``derived.py`` instead."""
    if spec.derive_from is not None:
        from .derived import build_derived_asset

        return build_derived_asset(spec)
    key = spec.key

    # A multi_asset to name the op (``@asset`` names it after the key, the same name as
    # the dataset's job, which Dagster refuses) and to carry the dataset's checks in the
    # same op: one op per dataset, not two, halves Dagster's per-definition load cost
    # (~10 ms per op: a thousand datasets). ``can_subset`` lets the UI run the checks
    # alone (the op then only audits) or the asset without them.
    @multi_asset(
        name=f"fetch_{key.job_name}",
        outs={
            output_name(key): AssetOut(
                key=asset_key(key),
                group_name=key.exchange,
                kinds={"parquet", "polars"},
                tags={"exchange": key.exchange, "data_type": key.data_type.value},
                description=_description(spec),
                metadata=dataset_metadata(key),
                io_manager_key=IO_MANAGER_KEY,
                freshness_policy=freshness_policy(spec),
                is_required=False,
            )
        },
        check_specs=dataset_check_specs(spec),
        partitions_def=daily_partitions(spec),
        backfill_policy=BackfillPolicy.single_run(),
        pool=spec.pool,
        can_subset=True,
        required_resource_keys={STORE_KEY},
    )
    def _dataset(context: AssetExecutionContext):  # type: ignore[no-untyped-def]
        # Yields Output[Committed] then AssetCheckResults. No return annotation and the
        # store through ``required_resource_keys``: Dagster evaluates every annotation
        # of every op at load, a measurable share of a big catalog's load time.
        dccd_store: DccdStore = getattr(context.resources, STORE_KEY)
        if asset_key(key) in context.selected_asset_keys:
            days = context.partition_key_range
            receipt, metadata, per_day = materialize_range(
                spec, days.start, days.end, dccd_store, context.log
            )
            add_day_metadata(context, key, per_day)
            yield Output(receipt, output_name=output_name(key), metadata=metadata)
        yield from evaluate_checks(context, spec, dccd_store.root)

    return _dataset


def build_dataset_assets(specs: Sequence[DatasetSpec]) -> list[AssetsDefinition]:
    """One asset per spec, in catalog order."""
    return [build_dataset_asset(spec) for spec in specs]
