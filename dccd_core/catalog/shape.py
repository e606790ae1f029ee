"""The catalog's YAML shape as pydantic models (strict: an unknown key is refused),
and the small parsers its fields use (days, durations)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from dccd_core.sources.archives.mode import ArchiveMode, parse_archive_mode

__all__ = ["DEFAULT_CONFIG_PATH", "DEFAULT_POOL_LIMIT", "DEFAULT_STORE_ROOT", "parse_duration_s"]

DEFAULT_CONFIG_PATH = "dccd.yaml"
DEFAULT_STORE_ROOT = "./data"
#: Concurrent runs per exchange (the Dagster pool limit) unless the catalog says otherwise.
DEFAULT_POOL_LIMIT = 2

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, None: 1.0}

def parse_duration_s(value: str | float | int) -> float:
    """``"10s"``, ``"500ms"``, ``"1m"``, ``2.5`` (seconds) -> seconds; > 0."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. 10s, 500ms, 1m")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if match is None:
            raise ValueError(f"invalid duration {value!r}: use e.g. 10s, 500ms, 1m")
        seconds = float(match.group(1)) * _DURATION_UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be > 0")
    return seconds


def _duration(value: str | float) -> str | float:
    parse_duration_s(value)
    return value


#: A duration as written in the catalog (``10s``, ``500ms``, ``1m``, seconds), checked.
Duration = Annotated[str | float, AfterValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StoreModel(_Model):
    root: str = DEFAULT_STORE_ROOT


class _ExchangeModel(_Model):
    rest_url: str | None = None
    ws_url: str | None = None
    archive_url: str | None = None
    pool_limit: int = Field(default=DEFAULT_POOL_LIMIT, ge=1, le=64)


class _BookModel(_Model):
    depth: int = Field(default=20, ge=1, le=5_000)
    snapshot_interval: Duration = "10s"


class _DatasetModel(_Model):
    exchange: str
    symbols: list[str] = Field(min_length=1)
    data_types: list[str] = Field(min_length=1)
    spans: list[str | int] = Field(default_factory=list)
    start: date
    update: str | None = None
    stream: list[str] = Field(default_factory=list)
    derive: list[str | int] = Field(default_factory=list)
    book: _BookModel = Field(default_factory=_BookModel)
    archives: ArchiveMode = ArchiveMode.AUTO

    @field_validator("archives", mode="before")
    @classmethod
    def _archives(cls, value: Any) -> ArchiveMode:
        # YAML reads a bare ``off`` as False: that is what the user wrote
        if value is False:
            return ArchiveMode.OFF
        return parse_archive_mode(str(value))

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        # ``start: 2024-01-01T00:00:00Z`` is a datetime; a day is what we mean.
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, str):
            return _parse_day(value)
        if isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-01-01")
        return value


class _AlertsModel(_Model):
    webhook: str | None = None
    stale_after: Duration = "10m"

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL; use e.g. https://hooks.slack.com/...")
        return value


class _CatalogModel(_Model):
    store: _StoreModel = Field(default_factory=_StoreModel)
    exchanges: dict[str, _ExchangeModel] = Field(default_factory=dict)
    datasets: list[_DatasetModel] = Field(default_factory=list)
    alerts: _AlertsModel | None = None


_DAY_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ].*)?$")


def _parse_day(text: str) -> date:
    """``2024-01-01`` (a time after it is ignored) -> date; a clear ValueError else."""
    match = _DAY_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a date: write it as YYYY-MM-DD, e.g. 2024-01-01")
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a valid date ({exc}): write a real day as YYYY-MM-DD, "
            "e.g. 2024-01-01"
        ) from None


# --------------------------------------------------------------------------- specs
