"""Which streams run, read from the Dagster instance: the stream column of ``dccd status``.

The core's ``status`` takes this reader as an argument (``StreamReader``): reading
Dagster's run records is this layer's job, the core never imports Dagster.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dccd_core.catalog import Catalog
from dccd_core.domain import DatasetKey

__all__ = ["stream_states"]

log = logging.getLogger("dccd.status")


def stream_states(catalog: Catalog) -> tuple[dict[DatasetKey, bool] | None, str]:
    """{dataset key: a stream run is active} from the instance at ``$DAGSTER_HOME``, or
    None with the reason (``unknown (...)``); never creates an instance.

    Read-only: only run records are queried.
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return None, "unknown (DAGSTER_HOME is not set)"
    if not Path(home).is_dir():
        return None, f"unknown (DAGSTER_HOME {home} is not a folder)"
    if not (Path(home) / "dagster.yaml").is_file() and not (Path(home) / "history").is_dir():
        return None, f"unknown (no Dagster instance at {home})"  # never create one
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    from .streams import STREAM_TAG, stream_specs

    try:
        active = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
        states: dict[DatasetKey, bool] = {}
        with DagsterInstance.get() as instance:
            for spec in stream_specs(catalog.datasets):
                records = instance.get_run_records(
                    filters=RunsFilter(tags={STREAM_TAG: spec.name}, statuses=active), limit=1
                )
                for symbol in spec.symbols:
                    states[spec.key(symbol)] = bool(records)
        return states, "reachable"
    except Exception as exc:  # any failure to read the instance: say unknown, never guess
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.info("dagster instance at %s not readable: %s", home, first)
        return None, f"unknown (instance at {home} not readable: {first})"
