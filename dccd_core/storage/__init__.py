"""The Parquet store: layout, atomic merge-writes, reads, inventory and coverage."""

from .commit import Committer, StoreWriter
from .coverage import UNFETCHED_GRACE_NS, Coverage, HoleReport, find_holes, settled_until
from .layout import dataset_dir, list_datasets, period_bounds, period_of, periods_between
from .results import DatasetInfo, WriteResult
from .segments import SegmentPolicy
from .store import Store, resolve_range

__all__ = [
    "UNFETCHED_GRACE_NS",
    "Committer",
    "Coverage",
    "DatasetInfo",
    "HoleReport",
    "SegmentPolicy",
    "Store",
    "StoreWriter",
    "WriteResult",
    "dataset_dir",
    "find_holes",
    "list_datasets",
    "period_bounds",
    "period_of",
    "periods_between",
    "resolve_range",
    "settled_until",
]
