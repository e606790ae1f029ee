"""The ``dccd`` command: the outermost layer, which may import both the core and the
Dagster project (``dccd_core`` never imports Dagster or ``dccd_pipelines``).

Verbs by concern: ``lake`` (read, inventory, gaps, import-v3), ``catalog_verbs``
(validate, status), ``symbols``, ``backfill``; ``app`` holds the group, its shared
options and the one-line error handling. Importing this package registers them all.
"""

from __future__ import annotations

from . import backfill, catalog_verbs, lake, symbols
from .app import cli, main

__all__ = ["backfill", "catalog_verbs", "cli", "lake", "main", "symbols"]
