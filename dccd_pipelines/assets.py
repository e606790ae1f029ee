"""The dataset factory: one ``Definitions`` per ``DatasetSpec`` (its asset, checks, job
and update schedule: ``dataset_definitions``), which ``definitions.build_definitions``
merges. From there a fetch is two hops away: the asset body calls
``execution.run_backfill``, which calls ``dccd_core.operations.backfill``.

Fetched datasets (this module): pool ``dccd_binance``, daily partitions
(``declaration.py``), ``BackfillPolicy.single_run()`` makes a range of partitions one
run and one paginated fetch. The body is thin: partition range -> time window ->
``execution.run_backfill`` -> a ``MaterializeResult`` (``metadata.py``): the run's
counters on the result, and each day's own figures on that day's materialization,
never the range's total. The rows never travel through Dagster's output: the backfill
commits them in bounded chunks during the run (``io_manager.py`` says why).
Candles listed under ``derive:`` get the derived-candle asset of ``derived.py``; a
stream-only type (liquidations) the non-materializable asset of ``stream_only.py``.

https://docs.dagster.io/guides/build/partitions-and-backfills/backfilling-data
"""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import (
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Definitions,
    multi_asset,
)

from dccd_core.catalog import DatasetSpec
from dccd_core.domain import (
    NO_REST_HISTORY,
    STREAM_ONLY,
    DatasetKey,
    DataType,
    NoCapability,
    iso_datetime,
)

from .checks import build_dataset_checks, dataset_check_specs, evaluate_checks
from .declaration import asset_key, daily_partitions, dataset_out, freshness_policy
from .derived import build_derived_asset
from .execution import counters_of, partition_window, run_backfill
from .metadata import materialize_result
from .schedules import build_resolved_job, build_update_schedule
from .store import STORE_KEY, DccdStore
from .stream_only import stream_only_definitions
from .summary import RunSummary, summarize

__all__ = [
    "asset_key",
    "build_dataset_asset",
    "build_dataset_assets",
    "build_fetched_asset",
    "daily_partitions",
    "dataset_definitions",
    "freshness_policy",
    "materialize_range",
    "output_name",
]

_WHAT = {
    DataType.OHLC: "candles",
    DataType.TRADES: "trades (taker side)",
    DataType.BOOK: "order-book snapshots",
    DataType.FUNDING: "funding rates (perpetuals)",
    DataType.MARK: "mark-price candles (perpetuals)",
    DataType.INDEX: "index-price candles (a perpetual's underlying)",
    DataType.OPEN_INTEREST: "open interest samples (perpetuals)",
}


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


def materialize_range(
    spec: DatasetSpec,
    first_day: str,
    last_day: str,
    store_resource: DccdStore,
    log: Any,
    *,
    now_ts: int | None = None,
) -> RunSummary:
    """Backfill the days ``first_day..last_day`` of ``spec``; what the run did and what
    the store now holds in them."""
    start_ts, end_ts = partition_window(first_day, last_day, now_ts)
    store = store_resource.open()
    result = run_backfill(spec, start_ts, end_ts, store, log.info)
    counters = counters_of(result)
    summary = summarize(counters, store, spec.key, start_ts, end_ts, now_ts=now_ts)
    log.info(
        f"{spec.key}: {counters.rows_fetched:,} rows fetched, {counters.rows_new:,} new, "
        f"{summary.row_count:,} stored in {iso_datetime(start_ts)} -> {iso_datetime(end_ts)}, "
        f"{counters.requests} requests, {len(summary.holes)} holes"
    )
    if counters.files:
        log.info(f"{spec.key}: files written: {', '.join(counters.files)}")
    if counters.archive_files_total:
        log.info(
            f"{spec.key}: archive files {counters.archive_files_done}/"
            f"{counters.archive_files_total}, {counters.archive_rows:,} archive rows, "
            f"{counters.rest_rows:,} REST rows"
        )
    for fallback in counters.archive_fallbacks:
        log.warning(f"{spec.key}: archive file {fallback}")
    for a, b in counters.uncovered:
        log.warning(
            f"{spec.key}: NOT complete: {iso_datetime(a)} -> {iso_datetime(b)} left uncovered "
            "(no usable archive file, and REST cannot reach it or archives: only forbids "
            "it); it stays out of the coverage, and a re-run fills it once a file serves it"
        )
    return summary


def output_name(key: DatasetKey) -> str:
    """The op output of a dataset: ``binance__ohlc__btc_usdt_1m``."""
    return key.job_name


def build_fetched_asset(spec: DatasetSpec) -> AssetsDefinition:
    """The asset of a fetched dataset (see the module docstring), carrying its checks."""
    key = spec.key

    # A multi_asset to name the op (``@asset`` names it after the key, the same name as
    # the dataset's job, which Dagster refuses) and to carry the dataset's checks in the
    # same op: one op per dataset, not two, halves Dagster's per-definition load cost
    # (~10 ms per op: a thousand datasets). ``can_subset`` lets the UI run the checks
    # alone (the op then only audits) or the asset without them.
    @multi_asset(
        name=f"fetch_{key.job_name}",
        outs={output_name(key): dataset_out(spec, _description(spec), is_required=False)},
        check_specs=dataset_check_specs(spec),
        partitions_def=daily_partitions(spec),
        backfill_policy=BackfillPolicy.single_run(),
        pool=spec.pool,
        can_subset=True,
        required_resource_keys={STORE_KEY},
    )
    def _dataset(context: AssetExecutionContext):  # type: ignore[no-untyped-def]
        # Yields a MaterializeResult (with the checks' results) or, the asset not
        # selected, the check results alone. No annotations and the store through
        # ``required_resource_keys``: Dagster evaluates every annotation of every op at
        # load, a measurable share of a big catalog's load time.
        dccd_store: DccdStore = getattr(context.resources, STORE_KEY)
        if asset_key(key) not in context.selected_asset_keys:
            yield from evaluate_checks(context, spec, dccd_store.root)
            return
        days = context.partition_key_range
        summary = materialize_range(spec, days.start, days.end, dccd_store, context.log)
        checks = list(evaluate_checks(context, spec, dccd_store.root))
        yield materialize_result(context, summary, dccd_store.root, check_results=checks)

    return _dataset


def build_dataset_asset(spec: DatasetSpec) -> AssetsDefinition:
    """The asset of one dataset: fetched, or derived from trades (``derive:``); a
    stream-only dataset has no materializable asset (``stream_only.py``)."""
    if spec.key.data_type in STREAM_ONLY:
        raise NoCapability(f"{NO_REST_HISTORY}: {spec.key} is declared by stream_only.py")
    if spec.derive_from is not None:
        return build_derived_asset(spec)
    return build_fetched_asset(spec)


def build_dataset_assets(specs: Sequence[DatasetSpec]) -> list[AssetsDefinition]:
    """One asset per spec, in catalog order."""
    return [build_dataset_asset(spec) for spec in specs]


def dataset_definitions(spec: DatasetSpec, resources: Mapping[str, Any]) -> Definitions:
    """The definitions of one dataset of the catalog (``resources``: the ones every
    dccd definition shares, which its job is resolved against); a stream-only one's are
    its stream's asset and checks (``stream_only.py``)."""
    if spec.key.data_type in STREAM_ONLY:
        return stream_only_definitions(spec)
    asset = build_dataset_asset(spec)
    # A fetched asset carries its checks in its own op (see build_fetched_asset); a
    # derived one has none to carry them, so they get their own op.
    checks: list[AssetChecksDefinition] = (
        [build_dataset_checks(spec)] if spec.derive_from is not None else []
    )
    job = build_resolved_job(spec, [asset, *checks], resources)
    schedules = [build_update_schedule(spec, job)] if spec.update_cron else []
    return Definitions(assets=[asset], asset_checks=checks, jobs=[job], schedules=schedules)
