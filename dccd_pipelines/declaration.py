"""What every dataset asset declares, fetched or derived: its key, daily partitions,
freshness policy and output (group, kinds, tags, the ``dccd/*`` metadata the IO manager
and checks read back).

Every name is derived from the spec's ``DatasetKey``: asset key
``binance/ohlc/btc_usdt_1m``, group ``binance``. Partitions are daily from the
dataset's start, today's in-progress day included (``end_offset=1``).
"""

from __future__ import annotations

import functools
from datetime import timedelta

from dagster import AssetKey, AssetOut, DailyPartitionsDefinition, FreshnessPolicy

from dccd_core.catalog import DatasetSpec
from dccd_core.domain import DatasetKey

from .io_manager import IO_MANAGER_KEY, dataset_metadata

__all__ = ["asset_key", "daily_partitions", "dataset_out", "freshness_policy"]


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


def dataset_out(
    spec: DatasetSpec,
    description: str,
    *,
    tags: dict[str, str] | None = None,
    is_required: bool = True,
) -> AssetOut:
    """The asset output of a dataset: group by exchange, the ``dccd/*`` metadata, read
    through the dccd IO manager, the freshness policy of its cron."""
    key = spec.key
    return AssetOut(
        key=asset_key(key),
        group_name=key.exchange,
        kinds={"parquet", "polars"},
        tags={"exchange": key.exchange, "data_type": key.data_type.value, **(tags or {})},
        description=description,
        metadata=dataset_metadata(key),
        io_manager_key=IO_MANAGER_KEY,
        freshness_policy=freshness_policy(spec),
        is_required=is_required,
    )
