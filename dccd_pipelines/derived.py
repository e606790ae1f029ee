"""Derived candle assets: candles computed from the lake's trades, not fetched.

A catalog dataset with trades can list spans under ``derive:``::

    - exchange: kraken
      symbols: [BTC/USD]
      data_types: [trades]
      start: 2020-01-01
      derive: [4h, 1d]          # -> kraken/ohlc/btc_usd_4h, kraken/ohlc/btc_usd_1d

Each derived span is an ordinary candle dataset (``DatasetSpec`` with ``derive_from``
set to the trades key): same key shape, daily partitions, job, schedule and checks as
a fetched one, so readers never need to know where a bar came from (the files' footers
say it: ``transport: derived``). Only its asset differs: it depends on the trades asset
(``deps``) and its body calls ``dccd_core.operations.derive.derive_candles`` instead of
a backfill, so it makes no exchange request and needs no pool.

A partition derives the bars overlapping its day, each from its whole window (a 1w
bar touching the day is read whole). Bars not closed yet, and bars whose trades were
not fetched (a hole in the trades' coverage), are left out and reported: materialize
the trades for those days, then this asset again.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from dccd_core.catalog import DatasetSpec
from dccd_core.domain import iso_datetime

from .declaration import asset_key, daily_partitions, dataset_out
from .execution import partition_window
from .metadata import materialize_result
from .store import DccdStore
from .summary import RunCounters, RunSummary, summarize

__all__ = ["build_derived_asset", "derive_range"]

_OUTPUT = "dataset"
_SHOWN = 5


def derive_range(
    spec: DatasetSpec, first_day: str, last_day: str, store_resource: DccdStore, log: Any,
    *, now_ts: int | None = None,
) -> tuple[RunSummary, dict[str, Any]]:
    """Derive the bars of the days ``first_day..last_day``; what the run did and the
    derivation's own metadata (source, bars, trades read, bars left out)."""
    from dccd_core.operations.derive import derive_candles

    if spec.derive_from is None:
        raise ValueError(f"{spec.key} is not a derived dataset")
    start_ts, end_ts = partition_window(first_day, last_day, now_ts)
    store = store_resource.open()
    result = derive_candles(store, spec.key, start_ts, end_ts, now_ts=now_ts)
    counters = RunCounters(
        rows_fetched=result.trades,
        rows_new=result.write.new_rows,
        files=tuple(str(path) for path in result.write.files),
    )
    summary = summarize(counters, store, spec.key, start_ts, end_ts, now_ts=now_ts)
    uncovered = [f"{iso_datetime(a)} -> {iso_datetime(b)}" for a, b in result.uncovered]
    log.info(
        f"{spec.key}: {result.bars:,} bars derived from {result.trades:,} trades of "
        f"{spec.derive_from} in {iso_datetime(result.start_ts)} -> "
        f"{iso_datetime(result.end_ts)}; {result.open_bars} not closed yet"
    )
    if uncovered:
        log.warning(
            f"{spec.key}: {len(uncovered)} stretch(es) of bars left out because their trades "
            f"were never fetched (first: {uncovered[0]}); materialize {spec.derive_from} "
            "for those days, then this asset again"
        )
    derived = {
        "derived_from": MetadataValue.text("/".join(spec.derive_from.asset_key_path)),
        "bars_derived": MetadataValue.int(result.bars),
        "trades_read": MetadataValue.int(result.trades),
        "open_bars": MetadataValue.int(result.open_bars),
        "uncovered": MetadataValue.json(uncovered[:_SHOWN]),
    }
    return summary, derived


def _description(spec: DatasetSpec) -> str:
    key, source = spec.key, spec.derive_from
    assert source is not None
    return (
        f"{key.exchange} {key.symbol} {key.span} candles derived from the stored "
        f"{source.exchange} {source.symbol} trades (no exchange request), daily partitions "
        f"from {spec.start} (UTC). Only closed bars whose trades were fetched are written."
    )


def build_derived_asset(spec: DatasetSpec) -> AssetsDefinition:
    """The asset of a derived candle dataset (see the module docstring)."""
    key, source = spec.key, spec.derive_from
    if source is None:
        raise ValueError(f"{key} is not a derived dataset")

    @multi_asset(
        name=f"derive_{key.job_name}",
        outs={
            _OUTPUT: dataset_out(
                spec, _description(spec), tags={"derived_from": source.data_type.value}
            )
        },
        deps=[asset_key(source)],
        partitions_def=daily_partitions(spec),
        backfill_policy=BackfillPolicy.single_run(),
    )
    def _derived(context: AssetExecutionContext, dccd_store: DccdStore) -> MaterializeResult[Any]:
        days = context.partition_key_range
        summary, derived = derive_range(spec, days.start, days.end, dccd_store, context.log)
        return materialize_result(context, summary, dccd_store.root, extra=derived)

    return _derived
