"""What store operations report back: writes say what they did, inventory what is there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dccd_core.domain import DatasetKey

__all__ = ["DatasetInfo", "WriteResult"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one or more merge-writes.

    ``rows``: rows handed to the store; ``new_rows``: how much the stored dataset grew
    (rows whose key was not stored before, net of duplicates); ``files``: the period
    files rewritten, each once, in the order first written.
    """

    rows: int = 0
    new_rows: int = 0
    files: tuple[Path, ...] = ()

    def __add__(self, other: WriteResult) -> WriteResult:
        if not isinstance(other, WriteResult):
            return NotImplemented
        files = tuple(dict.fromkeys((*self.files, *other.files)))
        return WriteResult(self.rows + other.rows, self.new_rows + other.new_rows, files)


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """One dataset of the lake as its Parquet footers describe it (no full reads)."""

    key: DatasetKey
    rows: int
    first_ts: int | None
    last_ts: int | None
    files: int
    bytes: int
