"""The PostgreSQL instance storage of ``deploy/dagster.yaml``: dagster-postgres with pool
slots claimed atomically (``instance_storage.AtomicSlotClaims``: dagster-postgres' own
claim can hand one slot to two runs). A module of its own because dagster-postgres is
in the ``deploy`` extra only.
"""

from __future__ import annotations

from typing import Any

from dagster._core.storage.event_log import EventLogStorage
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from .instance_storage import AtomicSlotClaims

__all__ = ["DccdPostgresEventLogStorage", "DccdPostgresStorage"]


def _pg_arguments(config_value: Any) -> dict[str, Any]:
    """The constructor arguments of a ``storage: postgres:`` config, as dagster-postgres
    reads them (its own ``from_config_value`` builds its own class, not ours)."""
    return {
        "postgres_url": pg_url_from_config(config_value),
        "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
        "token_provider": get_token_provider_from_config(config_value),
    }


class DccdPostgresEventLogStorage(AtomicSlotClaims, PostgresEventLogStorage):
    """dagster-postgres' event log with atomic pool-slot claims."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> DccdPostgresEventLogStorage:
        return cls(inst_data=inst_data, **_pg_arguments(config_value))


class DccdPostgresStorage(DagsterPostgresStorage):
    """``storage: custom:`` for deploy/dagster.yaml; its config is ``storage: postgres:``'s."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        # dagster-postgres' own __init__ would build (and connect) its event log first
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = PostgresRunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = DccdPostgresEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = PostgresScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        super(DagsterPostgresStorage, self).__init__()  # type: ignore[no-untyped-call]

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> DccdPostgresStorage:
        return cls(inst_data=inst_data, **_pg_arguments(config_value))

    @property
    def event_log_storage(self) -> EventLogStorage:
        return self._event_log_storage

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        if self.inst_data is None:
            return None
        return ConfigurableClassData(
            __name__, DccdPostgresEventLogStorage.__name__, self.inst_data.config_yaml
        )
