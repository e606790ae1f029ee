"""The validated catalog: one ``DatasetSpec`` per dataset, the exchanges' settings
and the alert settings (plain frozen dataclasses, what every layer reads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from dccd_core.domain import ConfigError, DatasetKey, to_ns
from dccd_core.sources.archives.mode import ArchiveMode

from .shape import DEFAULT_POOL_LIMIT

__all__ = ["AlertSettings", "Catalog", "DatasetSpec", "ExchangeSettings"]

@dataclass(frozen=True, slots=True)
class ExchangeSettings:
    """Per-exchange settings after env overrides: endpoints (None: the source's default)."""

    name: str
    rest_url: str | None = None
    ws_url: str | None = None
    pool_limit: int = DEFAULT_POOL_LIMIT
    #: the bulk-file archive origin (``exchanges.<name>.archive_url`` or
    #: ``DCCD_<EXCHANGE>_ARCHIVE_URL``); None: the source's documented default
    archive_url: str | None = None

    @property
    def pool(self) -> str:
        """The Dagster concurrency pool of this exchange's runs: ``dccd_binance``."""
        return f"dccd_{self.name}"


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One dataset to collect: the unit the asset factory turns into an asset, a job,
    a schedule and checks."""

    key: DatasetKey
    start: date
    update_cron: str | None = None
    stream: bool = False
    book_depth: int | None = None
    snapshot_interval_s: float | None = None
    exchange: ExchangeSettings = field(default_factory=lambda: ExchangeSettings("unknown"))
    #: For candles listed under ``derive:``: the trades dataset they are computed from.
    derive_from: DatasetKey | None = None
    #: ``archives:``: bulk files first (auto), REST only (off), bulk files only (only)
    archives: ArchiveMode = ArchiveMode.AUTO

    @property
    def start_ts(self) -> int:
        """The first partition's start, ns."""
        return to_ns(self.start)

    @property
    def rest_url(self) -> str | None:
        return self.exchange.rest_url

    @property
    def ws_url(self) -> str | None:
        return self.exchange.ws_url

    @property
    def archive_url(self) -> str | None:
        return self.exchange.archive_url

    @property
    def pool(self) -> str:
        return self.exchange.pool


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Where failure and stale-stream alerts go (``alerts:``; ``DCCD_ALERTS_WEBHOOK``
    overrides the URL, which is a secret)."""

    webhook: str
    stale_after_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Catalog:
    """The validated catalog: where the lake is, and what to collect."""

    path: Path
    store_root: Path
    exchanges: Mapping[str, ExchangeSettings]
    datasets: tuple[DatasetSpec, ...]
    alerts: AlertSettings | None = None

    def spec(self, key: DatasetKey) -> DatasetSpec:
        """The spec of ``key``; ``ConfigError`` if the catalog does not list it."""
        for spec in self.datasets:
            if spec.key == key:
                return spec
        raise ConfigError(f"{self.path}: no dataset {key} in the catalog; add it under datasets")

    def __len__(self) -> int:
        return len(self.datasets)
