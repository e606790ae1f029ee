"""A dataset run as Dagster metadata: the run's own figures on the ``MaterializeResult``
(the same on every partition it materializes, so each name says ``run_``), and each
day's own figures (rows, first/last ts, holes, last rows) on that day's materialization
(``context.add_asset_metadata(..., partition_key=day)``), never the range's total.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult, MetadataValue

from dccd_core.domain import DatasetKey, iso_datetime

from .declaration import asset_key
from .io_manager import dataset_path
from .summary import RunSummary

__all__ = ["add_day_metadata", "day_metadata", "materialize_result", "summary_metadata"]


def summary_metadata(summary: RunSummary) -> dict[str, Any]:
    """The run's own figures as Dagster metadata (a day's figures: ``day_metadata``)."""
    days, counters = summary.days, summary.counters
    first_day = days[0].partition if days else ""
    last_day = days[-1].partition if days else ""
    span = first_day if first_day == last_day else f"{first_day}...{last_day}"
    out: dict[str, Any] = {
        "run_partitions": MetadataValue.text(f"{span} ({len(days)} day(s))"),
        "run_rows_fetched": MetadataValue.int(counters.rows_fetched),
        "run_rows_new": MetadataValue.int(counters.rows_new),
        "run_requests": MetadataValue.int(counters.requests),
        "run_retries": MetadataValue.int(counters.retries),
        "run_rate_limit_pauses": MetadataValue.int(counters.rate_limit_pauses),
        "run_files_written": MetadataValue.int(len(counters.files)),
        # The file list goes to the run log, not here: a range run repeats its metadata
        # on every partition's materialization event (365 copies for a year).
    }
    if counters.archive_files_total or counters.uncovered:
        out.update(
            {
                "run_archive_files": MetadataValue.text(
                    f"{counters.archive_files_done}/{counters.archive_files_total}"
                ),
                "run_archive_rows": MetadataValue.int(counters.archive_rows),
                "run_rest_rows": MetadataValue.int(counters.rest_rows),
                "run_archive_fallbacks": MetadataValue.int(len(counters.archive_fallbacks)),
            }
        )
        if counters.archive_fallbacks:  # the first few; all of them are in the run log
            out["run_archive_fallbacks_first"] = MetadataValue.json(
                list(counters.archive_fallbacks[:5])
            )
        if counters.uncovered:
            out["run_uncovered"] = MetadataValue.json(
                [f"{iso_datetime(a)} -> {iso_datetime(b)}" for a, b in counters.uncovered[:5]]
            )
    return out


def day_metadata(summary: RunSummary) -> dict[str, dict[str, Any]]:
    """Each daily partition's own figures (rows, first/last ts, holes, last rows) as
    Dagster metadata, by partition key."""
    out: dict[str, dict[str, Any]] = {}
    for day in summary.days:
        values = day.as_dict()
        out[day.partition] = {
            "dagster/row_count": MetadataValue.int(day.row_count),
            "row_count": MetadataValue.int(day.row_count),
            "window_start": MetadataValue.text(values["window_start"]),
            "window_end": MetadataValue.text(values["window_end"]),
            "first_ts": MetadataValue.text(values["first_ts"] or ""),
            "last_ts": MetadataValue.text(values["last_ts"] or ""),
            "holes": MetadataValue.int(len(day.holes)),
            "holes_first": MetadataValue.json(values["holes_first"]),
            "preview": MetadataValue.md(day.preview_md),
        }
    return out


def add_day_metadata(
    context: AssetExecutionContext, key: DatasetKey, days: dict[str, dict[str, Any]]
) -> None:
    """Give each partition of the run its own figures (Dagster merges them over the
    result's metadata on that partition's materialization event)."""
    for partition, metadata in days.items():
        context.add_asset_metadata(metadata, asset_key=asset_key(key), partition_key=partition)


def materialize_result(
    context: AssetExecutionContext,
    summary: RunSummary,
    store_root: str,
    *,
    extra: Mapping[str, Any] | None = None,
    check_results: Sequence[AssetCheckResult] = (),
) -> MaterializeResult[Any]:
    """The result of a dataset run: the run's figures (and ``extra``), the dataset's
    folder and its row count in the window, each day's figures on its own partition,
    and the checks evaluated after the run."""
    key = summary.key
    add_day_metadata(context, key, day_metadata(summary))
    metadata = {
        **summary_metadata(summary),
        **(extra or {}),
        # For a range run this row_count is the range's; each day's materialization
        # gets its own (``add_day_metadata``), which Dagster puts over it.
        "path": MetadataValue.path(str(dataset_path(store_root, key))),
        "row_count": summary.row_count,
    }
    return MaterializeResult(
        asset_key=asset_key(key), metadata=metadata, check_results=list(check_results)
    )
