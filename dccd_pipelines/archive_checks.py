"""The ``archives_verified`` asset check: what the archive files delivered still agrees
with the exchange (``dccd_core.operations.archive_verify``).

Declared on the datasets whose exchange publishes archive files of them. Over the
checked window (the run's partitions, else the whole dataset) it re-fetches the
published sha256 of every ingested file (a few dozen bytes each) and fails when one
changed since ingestion, and compares the stored row count of one sampled span (a
REST page of candles, a minute of trades) with a REST fetch of it. With no archive
file ingested in the window it passes, saying so, without a request.

Severity: ERROR when something disagrees (the stored rows may not be what the
exchange publishes); WARN when it could not be verified (the exchange unreachable).
"""

from __future__ import annotations

import asyncio
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue

from dccd_core.catalog import DatasetSpec
from dccd_core.domain import STREAM_ONLY, DataType, iso_datetime, now_ns

__all__ = ["ARCHIVES_VERIFIED", "DESCRIPTION", "archive_check_result", "has_archive_check"]

ARCHIVES_VERIFIED = "archives_verified"
DESCRIPTION = (
    "The archive files ingested in the window are still published with the sha256 "
    "recorded at ingestion, and a REST sample has as many rows as stored."
)


def has_archive_check(spec: DatasetSpec) -> bool:
    """Whether ``spec``'s exchange publishes archive files of it (so it may use them)."""
    from dccd_core.catalog.exchanges import exchange_capability

    key = spec.key
    if key.data_type is DataType.BOOK or key.data_type in STREAM_ONLY or spec.derive_from:
        return False
    capability = exchange_capability(key.exchange)
    if capability is None:
        return False
    return capability.archive(key.data_type, key.symbol.market_kind, key.span) is not None


def archive_check_result(
    spec: DatasetSpec, store_root: str, start_ts: int | None, end_ts: int | None
) -> AssetCheckResult:
    """Run the check over ``[start_ts, end_ts)`` (None: the dataset's start / now)."""
    from dccd_core.operations.archive_verify import ArchiveVerification, verify_archives
    from dccd_core.storage import Store

    lo = start_ts if start_ts is not None else spec.start_ts
    hi = end_ts if end_ts is not None else now_ns()
    found: ArchiveVerification = asyncio.run(
        verify_archives(
            spec.key,
            Store(store_root),
            lo,
            hi,
            archive_url=spec.archive_url,
            rest_url=spec.rest_url,
        )
    )
    disagrees = bool(found.changed) or (found.sample_error is None and not found.sample_agrees)
    metadata: dict[str, Any] = {
        "window": MetadataValue.text(f"{iso_datetime(lo)} -> {iso_datetime(hi)}"),
        "archive_files": MetadataValue.int(found.files),
        "checksums_rechecked": MetadataValue.int(found.checked),
        "checksums_changed": MetadataValue.int(len(found.changed)),
    }
    if found.changed:
        metadata["changed_files"] = MetadataValue.json(
            [
                {"file": c.name, "ingested_sha256": c.recorded, "published_now": c.now}
                for c in found.changed[:10]
            ]
        )
    if found.unverifiable:
        metadata["unverifiable"] = MetadataValue.json(list(found.unverifiable[:10]))
    if found.sample is not None:
        a, b = found.sample
        metadata["sample"] = MetadataValue.text(f"{iso_datetime(a)} -> {iso_datetime(b)}")
        metadata["sample_file"] = MetadataValue.text(found.sample_file or "")
        metadata["sample_stored_rows"] = MetadataValue.int(found.stored_rows or 0)
        if found.rest_rows is not None:
            metadata["sample_rest_rows"] = MetadataValue.int(found.rest_rows)
    return AssetCheckResult(
        asset_key=AssetKey(spec.key.asset_key_path),
        check_name=ARCHIVES_VERIFIED,
        passed=found.passed,
        severity=AssetCheckSeverity.ERROR if disagrees else AssetCheckSeverity.WARN,
        metadata=metadata,
        description=found.describe(),
    )
