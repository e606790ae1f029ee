"""The seam between bulk-file archives and the backfill planner.

An exchange that publishes history as bulk files (data.binance.vision, Bybit's
public trading dumps, BitMEX's daily trade files) gets an ``ArchiveReader``: it says
which files *should* hold a window (``plan_files``) and reads one file into row
batches in time order (``read``, which returns an ``ArchiveRead``: the batches, then
the file's ``IngestedFile``), verifying what can be verified on the way (published
sha256, a complete zip/gzip stream, plausible rows). The record belongs to the read,
not to the reader, so files read side by side (the planner reads one ahead) never see
each other's. A file that cannot be
had or trusted raises ``ArchiveUnavailable`` with the reason; the planner then fetches
that file's window over REST instead, so a missing day or a bad checksum costs speed,
never rows.

Rows come out in the dataset's Arrow schema (the same columns, units and trade ids as
the REST source yields for the same span), so the store's natural-key dedup makes the
seams between archive and REST rows invisible.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType

import polars as pl

from dccd_core.domain import ArchiveGranularity, DatasetKey, DccdError

__all__ = [
    "ArchiveFile",
    "ArchiveRead",
    "ArchiveReader",
    "ArchiveUnavailable",
    "IngestedFile",
]


class ArchiveUnavailable(DccdError):
    """This file cannot be used (missing, checksum mismatch, truncated, implausible):
    fetch its window over REST. ``reason`` is one short phrase for logs and metadata."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"archive file {name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One bulk file that should exist: where it is and which ``[start_ts, end_ts)`` it holds."""

    #: the file name as published (``BTCUSDT-1m-2024-01.zip``), the provenance label
    name: str
    #: the documented path under the archive origin (``/data/spot/monthly/...``)
    path: str
    #: the published sha256 file's path, or None where the exchange publishes none
    checksum_path: str | None
    start_ts: int
    end_ts: int
    granularity: ArchiveGranularity


@dataclass(frozen=True, slots=True)
class IngestedFile:
    """What ``read`` verified about a file, once it has been read to its end."""

    file: ArchiveFile
    #: sha256 of the bytes downloaded (hex)
    sha256: str
    #: the published checksum (hex), or None where none is published
    published_sha256: str | None
    rows: int


class ArchiveRead:
    """One file being read, as ``ArchiveReader.read`` returns it.

    ``async for batch in read`` gives the rows; once the batches are exhausted,
    ``ingested`` says what was verified (None before, and after a read that failed or
    was cut short). ``aclose()`` (or ``async with``) ends a read early and releases its
    temp file at once rather than at garbage collection.

    A reader builds one from ``steps``: an async generator yielding the batches and, as
    its last item, the file's ``IngestedFile`` (a generator cannot return a value, and
    a result slot on the reader would be shared by every read in flight)."""

    __slots__ = ("_ingested", "_steps", "file")

    def __init__(
        self, file: ArchiveFile, steps: AsyncGenerator[pl.DataFrame | IngestedFile, None]
    ) -> None:
        self.file = file
        self._steps = steps
        self._ingested: IngestedFile | None = None

    @property
    def ingested(self) -> IngestedFile | None:
        """The file's verification record, once its last batch has been read."""
        return self._ingested

    def __aiter__(self) -> ArchiveRead:
        return self

    async def __anext__(self) -> pl.DataFrame:
        if self._ingested is not None:
            raise StopAsyncIteration
        item = await self._steps.__anext__()
        if isinstance(item, IngestedFile):
            if item.file != self.file:
                raise ValueError(f"read of {self.file.name} ended with {item.file.name}'s record")
            self._ingested = item
            await self._steps.aclose()
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop the read (its temp file is deleted); harmless once it has ended."""
        await self._steps.aclose()

    async def __aenter__(self) -> ArchiveRead:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ArchiveReader(ABC):
    """The bulk files of one exchange, under one origin (overridable like REST:
    ``DCCD_<EXCHANGE>_ARCHIVE_URL`` or the catalog's ``exchanges.<name>.archive_url``).

    A reader holds no per-file state: ``read`` may be called for several files at once."""

    def __init__(self, origin: str) -> None:
        self.origin = origin.rstrip("/")

    @abstractmethod
    def plan_files(
        self, key: DatasetKey, start_ts: int, end_ts: int, now_ts: int
    ) -> list[ArchiveFile]:
        """The files that should cover ``[start_ts, end_ts)``, in time order, disjoint:
        monthly files for whole closed months, daily files for the other closed days
        published by ``now_ts``. What they do not cover is the REST tail's job. Pure: no
        request is made (a missing file is found out by ``read``)."""

    @abstractmethod
    def read(self, key: DatasetKey, file: ArchiveFile) -> ArchiveRead:
        """Download, verify and decode ``file``: the returned ``ArchiveRead`` gives
        bounded batches of rows in time order (never the whole file in memory), then
        its ``ingested`` record. Nothing is requested before the first batch is asked
        for. Iterating raises ``ArchiveUnavailable`` before the first batch where it can
        (missing, bad checksum) and at the latest at the end (a truncated stream)."""

    @abstractmethod
    async def fetch_published_sha256(self, file: ArchiveFile) -> str | None:
        """The sha256 the exchange publishes for ``file`` now (lower-case hex); None
        where none is published (no checksum for this file, or its checksum file is gone
        or unreadable). A cheap request (a checksum file is a few dozen bytes) for
        re-verifying files ingested earlier. Raises ``TransportError`` when the archive
        host cannot be reached."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the reader's HTTP client."""
