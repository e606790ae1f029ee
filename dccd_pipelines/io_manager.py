"""The Parquet IO manager: how a downstream asset reads a dccd dataset.

Why the dataset assets do not write through it: a dataset asset may cover a year of
trades in one run (``BackfillPolicy.single_run``), far more than fits in memory, and
the backfill must commit as it goes so a crash keeps what was fetched. So the rows
never travel through Dagster's output machinery: the asset body opens the ``Store``
from the ``DccdStore`` resource, ``operations.backfill`` merge-writes bounded chunks
through it *during* the run, and the asset returns a ``MaterializeResult`` (metadata
only; Dagster does not call an IO manager for it).

What it still earns its place for:

* reading: ``load_input`` gives a downstream asset a ``polars.LazyFrame`` over the
  partition range (``Store.scan``), so it decides itself how much to materialise;
* writing a plain ``polars.DataFrame`` returned by some other asset, through
  ``Store.write`` (a small frame, by contract);
* paths: ``dataset_path(root, key)`` is the one function that says where a dataset lives.

Assets find their ``DatasetKey`` in their definition metadata (``dccd/*`` entries),
never by parsing asset-key strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from dccd_core.domain import DatasetKey, DccdError, StoreError, to_ns

from .store import DccdStore

__all__ = [
    "IO_MANAGER_KEY",
    "DccdIOManager",
    "dataset_key_from_metadata",
    "dataset_metadata",
    "dataset_path",
]

#: The resource key every dccd asset writes through.
IO_MANAGER_KEY = "dccd_io_manager"


def dataset_path(root: str, key: DatasetKey) -> Path:
    """The dataset's folder in the lake at ``root`` (its period files live directly under it)."""
    from dccd_core.storage.layout import dataset_dir

    return dataset_dir(root, key)  # an s3:// root stays a bucket path (shown as its URL)


def dataset_metadata(key: DatasetKey) -> dict[str, str]:
    """Definition metadata that lets the IO manager and checks recover the dataset."""
    return {
        "dccd/exchange": key.exchange,
        "dccd/symbol": str(key.symbol),
        "dccd/data_type": key.data_type.value,
        "dccd/span": key.span.label if key.span else "",
    }


def dataset_key_from_metadata(metadata: Mapping[str, Any] | None) -> DatasetKey:
    """Inverse of ``dataset_metadata``."""
    meta = dict(metadata or {})

    def text(name: str) -> str:
        value = meta.get(f"dccd/{name}", "")
        return str(getattr(value, "value", value) or "")

    if not text("exchange"):
        raise StoreError(
            "this asset has no dccd/* metadata; only dccd dataset assets use the dccd IO manager"
        )
    return DatasetKey.of(text("exchange"), text("symbol"), text("data_type"), text("span") or None)


class DccdIOManager(ConfigurableIOManager):
    """Reads are lazy scans; a returned DataFrame is written through ``store`` (see the
    module docstring)."""

    store: DccdStore

    def target(self, key: DatasetKey) -> Path:
        """The dataset's folder in the lake."""
        return dataset_path(self.store.root, key)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        key = dataset_key_from_metadata(context.definition_metadata)
        if isinstance(obj, pl.DataFrame):
            result = self.store.open().write(
                key, obj, provenance={"source": "dagster", "run_id": context.run_id}
            )
            row_count = int(getattr(result, "rows", obj.height))
        else:
            raise StoreError(
                f"the dccd IO manager stores a polars DataFrame, not {type(obj).__name__}; "
                f"return one from {key} (a dccd dataset asset returns a MaterializeResult)"
            )
        context.add_output_metadata(
            {"path": MetadataValue.path(str(self.target(key))), "row_count": row_count}
        )

    def load_input(self, context: InputContext) -> pl.LazyFrame:
        upstream = context.upstream_output
        if upstream is None:
            raise StoreError("the dccd IO manager loads only the output of a dccd asset")
        key = dataset_key_from_metadata(upstream.definition_metadata)
        start_ts: int | None = None
        end_ts: int | None = None
        if context.has_asset_partitions:
            window = context.asset_partitions_time_window
            start_ts, end_ts = to_ns(window.start), to_ns(window.end)
        try:
            lazy = self.store.open().scan(key, start_ts, end_ts)
        except DccdError:
            raise
        return lazy.lazy() if isinstance(lazy, pl.DataFrame) else lazy
