"""Buffered writing for backfills and streams: each period file once per pass.

Writing every 1,000-row page as its own merge-write would rewrite a day's file a
thousand times (quadratic cost). ``StoreWriter`` buffers pages per period and commits
only when a bound is passed (``commit_rows`` buffered, or ``commit_seconds`` since the
last commit), on ``flush()`` and on exit. An early commit by row count writes every
period except the one currently being filled (the period of the last page added),
unless that period alone is past the bound: in a paged backfill, finished periods are
written once and the open one waits until it is complete. Memory stays bounded by
about twice ``commit_rows``.

Exiting the ``with`` block flushes, also on an exception: buffered rows were fetched
correctly, and losing them would only make the next run fetch them again. A corrupt
period file fails only its own period: the others are still written, the refused rows
stay buffered, and the ``CorruptFile`` is raised after.
A writer is meant for one task; it is not thread-safe (the store below it is).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from dccd_core.domain import CorruptFile, DatasetKey, StoreError

from .frames import coerce_rows, split_by_period
from .layout import period_of
from .results import WriteResult

if TYPE_CHECKING:
    from .store import Store

__all__ = ["StoreWriter"]


class StoreWriter:
    """Context manager buffering rows of one dataset; see the module docstring."""

    def __init__(
        self,
        store: Store,
        key: DatasetKey,
        *,
        provenance: Mapping[str, str] | None,
        commit_rows: int,
        commit_seconds: float,
    ) -> None:
        self._store = store
        self.key = key
        self._metadata = store._provenance(provenance)
        self.commit_rows = max(1, commit_rows)
        self.commit_seconds = commit_seconds
        self._buffers: dict[str, list[pl.DataFrame]] = {}
        self._sizes: dict[str, int] = {}
        self._active: str | None = None
        self._last_commit = time.monotonic()
        self._result = WriteResult()
        self._closed = False

    @property
    def result(self) -> WriteResult:
        """Everything committed so far by this writer."""
        return self._result

    @property
    def buffered_rows(self) -> int:
        """Rows added but not yet committed."""
        return sum(self._sizes.values())

    def add(self, rows: pl.DataFrame | pa.Table) -> None:
        """Buffer ``rows`` (schema-checked now); may commit if a bound is passed."""
        if self._closed:
            raise StoreError(f"writer of {self.key} is closed")
        frame = coerce_rows(self.key.data_type, rows)
        if frame.height:
            for period, part in split_by_period(self.key, frame).items():
                self._buffers.setdefault(period, []).append(part)
                self._sizes[period] = self._sizes.get(period, 0) + part.height
            self._active = period_of(self.key, int(frame.item(-1, "ts")))
        if self.buffered_rows >= self.commit_rows:
            self._commit_early()
        elif self._sizes and time.monotonic() - self._last_commit >= self.commit_seconds:
            self.flush()

    def _commit_early(self) -> None:
        finished = [p for p in self._buffers if p != self._active]
        if finished:
            self._commit(finished)
        if self.buffered_rows >= self.commit_rows:
            self._commit(list(self._buffers))

    def flush(self) -> WriteResult:
        """Commit every buffered row now; returns what this flush wrote."""
        return self._commit(list(self._buffers))

    def _commit(self, periods: list[str]) -> WriteResult:
        done = WriteResult()
        failed: list[CorruptFile] = []
        if periods:
            with self._store._locked(self.key):
                for period in sorted(periods):
                    try:
                        step = self._store._merge_period(
                            self.key, period, self._buffers[period], self._metadata
                        )
                    except CorruptFile as exc:  # keep its rows; write the healthy periods
                        failed.append(exc)
                        continue
                    # Drop the buffer only once its rows are durably in the file.
                    del self._buffers[period]
                    del self._sizes[period]
                    done += step
                    self._result += step
        self._last_commit = time.monotonic()
        if failed:
            raise failed[0]
        return done

    def close(self) -> WriteResult:
        """Flush and refuse further rows; returns the cumulative result."""
        if not self._closed:
            self.flush()
            self._closed = True
        return self._result

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as flush_exc:  # keep the original error; say the flush failed too
            exc.add_note(f"dccd: flushing buffered rows of {self.key} also failed: {flush_exc}")
