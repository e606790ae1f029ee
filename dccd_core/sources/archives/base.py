"""The seam between bulk-file archives and the backfill planner.

An exchange that publishes history as bulk files (data.binance.vision, Bybit's
public trading dumps, BitMEX's daily trade files) gets an ``ArchiveReader``: it says
which files *should* hold a window (``plan_files``) and reads one file into row
batches in time order (``read``), verifying what can be verified on the way
(published sha256, a complete zip/gzip stream, plausible rows). A file that cannot be
had or trusted raises ``ArchiveUnavailable`` with the reason; the planner then fetches
that file's window over REST instead, so a missing day or a bad checksum costs speed,
never rows.

Rows come out in the dataset's Arrow schema (the same columns, units and trade ids as
the REST source yields for the same span), so the store's natural-key dedup makes the
seams between archive and REST rows invisible.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

import polars as pl

from dccd_core.domain import ArchiveGranularity, DatasetKey, DccdError

__all__ = [
    "ArchiveFile",
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


class ArchiveReader(ABC):
    """The bulk files of one exchange, under one origin (overridable like REST:
    ``DCCD_<EXCHANGE>_ARCHIVE_URL`` or the catalog's ``exchanges.<name>.archive_url``)."""

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
    def read(self, key: DatasetKey, file: ArchiveFile) -> AsyncIterator[pl.DataFrame]:
        """Download, verify and decode ``file``: bounded batches of rows in time order
        (never the whole file in memory). Raises ``ArchiveUnavailable`` before the first
        batch where it can (missing, bad checksum) and at the latest at the end (a
        truncated stream). After the last batch, ``last_ingested`` describes the file."""

    @property
    @abstractmethod
    def last_ingested(self) -> IngestedFile | None:
        """The verification record of the file ``read`` finished last."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the reader's HTTP client."""
