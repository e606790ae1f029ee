"""Per-exchange Dagster pools: at most ``pool_limit`` runs talk to one exchange at once.

Every dataset asset runs in the pool ``dccd_<exchange>``. The instance's
``concurrency.pools.default_limit`` (dagster.yaml) bounds every pool; the catalog's
``exchanges.<name>.pool_limit`` is applied by a small default-running sensor that sets
the pool's slot count on the instance when it differs, so editing the catalog is the
only step (the same as ``dagster instance concurrency set dccd_<name> N`` by hand).

https://docs.dagster.io/guides/operate/managing-concurrency
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from dccd_core.catalog import Catalog

from .instance_storage import AtomicSlotClaims

__all__ = ["apply_pool_limits", "build_pool_sensor", "racy_slot_claims"]

POOL_SENSOR_INTERVAL_S = 60


def apply_pool_limits(instance: DagsterInstance, limits: Mapping[str, int]) -> dict[str, int]:
    """Set each pool's slot count where it differs; the pools changed and their limits."""
    storage = instance.event_log_storage
    changed: dict[str, int] = {}
    known = storage.get_concurrency_keys()
    for pool, limit in sorted(limits.items()):
        current = storage.get_concurrency_info(pool).slot_count if pool in known else None
        if current != limit:
            storage.set_concurrency_slots(pool, limit)
            changed[pool] = limit
    return changed


#: Dagster's event logs whose slot claim can give one slot to two runs (instance_storage)
_RACY_STORAGES = ("SqliteEventLogStorage", "PostgresEventLogStorage", "MySQLEventLogStorage")


def racy_slot_claims(instance: DagsterInstance) -> str | None:
    """Why the instance's pools may admit more runs than their limit, or None: its
    storage is one of Dagster's own, not dccd's (an older copy of dagster.yaml)."""
    storage = instance.event_log_storage
    name = type(storage).__name__
    if isinstance(storage, AtomicSlotClaims) or name not in _RACY_STORAGES:
        return None
    return (
        f"this instance stores events with Dagster's {name}, which can give one pool slot "
        "to two runs started together, so an exchange may serve more runs than its "
        "pool_limit; use dccd's dagster.yaml (or deploy/dagster.yaml) as "
        "$DAGSTER_HOME/dagster.yaml: same files and tables, atomic slot claims"
    )


def build_pool_sensor(catalog: Catalog) -> SensorDefinition:
    """The sensor keeping ``dccd_<exchange>`` pools at the catalog's ``pool_limit``."""
    limits = {ex.pool: ex.pool_limit for ex in catalog.exchanges.values()}

    @sensor(
        name="dccd_pool_limits",
        minimum_interval_seconds=POOL_SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description="Applies the catalog's per-exchange pool_limit to the Dagster pools.",
    )
    def _pools(context: SensorEvaluationContext) -> SkipReason:
        changed = apply_pool_limits(context.instance, limits)
        text = ", ".join(f"{k}={v}" for k, v in changed.items()) or "nothing to change"
        racy = racy_slot_claims(context.instance)
        if racy is not None:
            context.log.warning(racy)
            text += f"; WARNING: {racy}"
        return SkipReason(f"pool limits: {text}")

    return _pools
