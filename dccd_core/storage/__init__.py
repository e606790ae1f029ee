"""The Parquet store: layout, atomic merge-writes, reads, inventory and coverage."""

from .coverage import Coverage
from .layout import dataset_dir, list_datasets, period_bounds, period_of, periods_between
from .results import DatasetInfo, WriteResult
from .store import Store, resolve_range
from .writer import StoreWriter

__all__ = [
    "Coverage",
    "DatasetInfo",
    "Store",
    "StoreWriter",
    "WriteResult",
    "dataset_dir",
    "list_datasets",
    "period_bounds",
    "period_of",
    "periods_between",
    "resolve_range",
]
