"""The catalog as the Dagster project reads it: ``dccd_core.catalog`` with Dagster's own
cron validator, so an ``update:`` cron is accepted exactly when a schedule accepts it.

The catalog itself (YAML shape, specs, validation) lives in the core (``dccd_core.catalog``):
the CLI and ``dccd status`` read it without Dagster. Import the specs from there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from dccd_core import catalog as core_catalog
from dccd_core.catalog import Catalog

__all__ = ["dagster_cron_check", "load_catalog", "parse_catalog"]


def dagster_cron_check(text: str) -> bool:
    """Dagster's cron validator (five fields, no 30th of February, ...)."""
    from dagster._utils.schedules import is_valid_cron_string

    return len(text.split()) == 5 and is_valid_cron_string(text)


def load_catalog(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    today: date | None = None,
) -> Catalog:
    """``dccd_core.catalog.load_catalog`` with Dagster's cron validator."""
    return core_catalog.load_catalog(path, env=env, today=today, cron_check=dagster_cron_check)


def parse_catalog(
    raw: Any,
    *,
    path: Path | str = "<catalog>",
    env: Mapping[str, str] | None = None,
    today: date | None = None,
) -> Catalog:
    """``dccd_core.catalog.parse_catalog`` with Dagster's cron validator."""
    return core_catalog.parse_catalog(
        raw, path=path, env=env, today=today, cron_check=dagster_cron_check
    )
