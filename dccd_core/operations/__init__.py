"""The verbs of dccd: what a notebook, the CLI and the Dagster assets call."""

from .archive_verify import ArchiveVerification, verify_archives
from .backfill import BackfillProgress, BackfillResult, backfill, backfill_sync
from .reading import inventory, read
from .stream import FlushReport, SymbolReport, stream

__all__ = [
    "ArchiveVerification",
    "BackfillProgress",
    "BackfillResult",
    "FlushReport",
    "SymbolReport",
    "backfill",
    "backfill_sync",
    "inventory",
    "read",
    "stream",
    "verify_archives",
]
