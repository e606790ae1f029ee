"""The generic archive reader: plan by calendar, download, verify, decode, check.

An exchange's reader (``sources/<exchange>/archives.py``) only says where its files are
(``file_for``), how they are laid out (``layout``) and how one decoded block becomes
rows of the dataset's schema (``to_rows``); everything else is done here, once:

    plan_files: calendar.archive_periods (monthly, then daily, published by now)
    read:       an ArchiveRead over _steps (the per-file state lives in the generator):
                fetch.fetch_verified -> temp file, sha256 against the published one
                (shared_files instead where one file holds several datasets)
                decode.open_member + iter_csv_frames -> blocks of about 4 MB of text
                to_rows (per exchange; the timestamp unit held per file in FileState)
                checks.check_archive_rows -> inside the file's period, plausible values
                batches in time order (a file going back in time is refused)
                IngestedFile once the last block was read (the read's last step)
    fetch_published_sha256: fetch.fetch_published (the checksum file alone)

The temp file is deleted however ``read`` ends (exhausted, failed, or abandoned by the
caller). Decompression, parsing, ``to_rows`` and the row checks run in a worker thread
so the event loop (the commit loop, and the REST tail running beside the archives) is
not blocked by a 100 MB file.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from abc import abstractmethod
from collections.abc import AsyncGenerator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

import httpx
import polars as pl

from dccd_core.domain import (
    NS_PER_DAY,
    ArchiveFeature,
    ArchiveGranularity,
    Capability,
    DatasetKey,
    NoCapability,
    iso_datetime,
)
from dccd_core.domain.sanity import IdEdges
from dccd_core.transport.download import Downloader

from .base import ArchiveFile, ArchiveRead, ArchiveReader, ArchiveUnavailable, IngestedFile
from .calendar import Period, archive_periods
from .checks import check_archive_rows
from .decode import (
    DEFAULT_BLOCK_BYTES,
    CsvLayout,
    decompress_to,
    iter_csv_frames,
    iter_csv_frames_backward,
    open_member,
)
from .fetch import Fetched, fetch_published, fetch_verified
from .shared_files import SHARED_DOWNLOADS, SharedDownloads

__all__ = ["FileState", "HttpArchiveReader"]


@dataclass(slots=True)
class FileState:
    """What ``to_rows`` learns from a file's first block and holds for the rest of it."""

    #: nanoseconds per unit of the file's integer timestamps (None until detected)
    ns_per_unit: int | None = None
    #: the highest trade id seen so far in this file (exchanges with integer ids)
    last_trade_id: int | None = None
    #: the lowest and highest (id, ts) checked so far (``check_trade_id_order``)
    id_edges: IdEdges | None = None


class HttpArchiveReader(ArchiveReader):
    """An ``ArchiveReader`` over plain HTTP file downloads; see the module docstring."""

    #: the exchange's capability (its ``archives`` say what is published)
    capability: ClassVar[Capability]
    #: files may list their rows newest first (the order is undocumented): such a file
    #: is decompressed to disk and read backward when its top is newer than its bottom
    order_may_be_reversed: ClassVar[bool] = False
    #: one file holds several datasets (BitMEX: every symbol's trades of a day): its
    #: downloads are shared by the readers of the process (``shared_files``)
    shares_files: ClassVar[bool] = False

    def __init__(
        self,
        origin: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        temp_dir: str | Path | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        super().__init__(origin)
        self.block_bytes = block_bytes
        self.temp_dir = str(temp_dir) if temp_dir is not None else None
        self.downloader = Downloader(self.capability.exchange, self.origin, transport=transport)
        self.shared: SharedDownloads | None = SHARED_DOWNLOADS if self.shares_files else None

    # -- what an exchange declares -----------------------------------------------------

    @abstractmethod
    def file_for(self, key: DatasetKey, period: Period) -> ArchiveFile:
        """The published file (and checksum file) holding ``period`` of ``key``."""

    @abstractmethod
    def layout(self, key: DatasetKey) -> CsvLayout:
        """How ``key``'s files are laid out."""

    @abstractmethod
    def to_rows(
        self, key: DatasetKey, file: ArchiveFile, frame: pl.DataFrame, state: FileState
    ) -> pl.DataFrame:
        """One decoded block (``layout``'s columns) to rows of ``key``'s schema, sorted by
        ts; raise ``ArchiveUnavailable`` for values that cannot be read."""

    # -- the generic part ---------------------------------------------------------------

    def feature(self, key: DatasetKey) -> ArchiveFeature:
        """The published series serving ``key``; ``NoCapability`` where there is none."""
        found = self.capability.archive(key.data_type, key.symbol.market_kind, key.span)
        if found is None:
            offered = ", ".join(
                f"{f.data_type} ({'/'.join(f.markets)})" for f in self.capability.archives
            )
            raise NoCapability(
                f"{self.capability.exchange} publishes no archive files for {key} "
                f"(its archives: {offered or 'none'}); fetch it over REST (archives: off)"
            )
        return found

    def plan_files(
        self, key: DatasetKey, start_ts: int, end_ts: int, now_ts: int
    ) -> list[ArchiveFile]:
        feature = self.feature(key)
        periods = archive_periods(
            start_ts,
            end_ts,
            now_ts,
            lag_days=feature.lag_days,
            granularities=feature.granularities,
        )
        return [self.file_for(key, period) for period in periods]

    def daily_files(self, key: DatasetKey, file: ArchiveFile) -> list[ArchiveFile]:
        """The daily files covering a monthly ``file`` (its fallback when the month's file
        is missing or fails: a month refetched over REST is what archives avoid); [] if
        the exchange publishes no daily files or ``file`` is one already."""
        feature = self.feature(key)
        if (
            file.granularity is ArchiveGranularity.DAILY
            or ArchiveGranularity.DAILY not in feature.granularities
        ):
            return []
        periods = archive_periods(
            file.start_ts,
            file.end_ts,
            file.end_ts + (feature.lag_days + 1) * NS_PER_DAY,
            lag_days=feature.lag_days,
            granularities=(ArchiveGranularity.DAILY,),
        )
        return [self.file_for(key, period) for period in periods]

    def read(self, key: DatasetKey, file: ArchiveFile) -> ArchiveRead:
        return ArchiveRead(file, self._steps(key, file))

    async def fetch_published_sha256(self, file: ArchiveFile) -> str | None:
        return await fetch_published(self.downloader, file)

    async def _steps(
        self, key: DatasetKey, file: ArchiveFile
    ) -> AsyncGenerator[pl.DataFrame | IngestedFile, None]:
        """The batches of ``file``, then its ``IngestedFile`` (``ArchiveRead``'s protocol)."""
        layout = self.layout(key)
        state = FileState()
        rows = 0
        last_ts: int | None = None
        with ExitStack() as stack:
            path, fetched = await self._download(file, stack)
            frames = await asyncio.to_thread(self._frames, key, file, layout, path, stack)
            while (
                out := await asyncio.to_thread(self._next_rows, key, file, frames, state)
            ) is not None:
                if out.height:
                    first = int(out.get_column("ts")[0])
                    if last_ts is not None and first < last_ts:
                        raise ArchiveUnavailable(
                            file.name,
                            f"rows out of time order ({iso_datetime(first)} after "
                            f"{iso_datetime(last_ts)})",
                        )
                    last_ts = int(out.get_column("ts")[-1])
                rows += out.height
                yield out
        yield IngestedFile(file, fetched.sha256, fetched.published_sha256, rows)

    async def _download(self, file: ArchiveFile, stack: ExitStack) -> tuple[Path, Fetched]:
        """``file`` verified on disk, its clean-up on ``stack``; a file holding several
        datasets (``shares_files``) leased from the process's shared downloads."""
        if self.shared is not None:
            shared = await self.shared.acquire(self.downloader, file, self.temp_dir)
            stack.callback(self.shared.release, shared)
            return shared.path, shared.fetched
        temp = stack.enter_context(self._temp_file(file.name))
        return Path(temp.name), await fetch_verified(self.downloader, file, temp)

    def _next_rows(
        self, key: DatasetKey, file: ArchiveFile, frames: Iterator[pl.DataFrame], state: FileState
    ) -> pl.DataFrame | None:
        """The next block as checked rows of ``key``'s schema, None at the end (in a
        thread: the conversion is polars work too, kept off the event loop so the commit
        loop and the REST tail are not held behind it)."""
        frame = next(frames, None)
        if frame is None:
            return None
        out = self.to_rows(key, file, frame, state)
        check_archive_rows(out, key.data_type, file)
        return out

    def _temp_file(self, name: str) -> IO[bytes]:
        """A temp file deleted when closed (``read`` closes it however it ends)."""
        return tempfile.NamedTemporaryFile(
            prefix="dccd-archive-", suffix=f"-{name}", dir=self.temp_dir
        )

    def _frames(
        self, key: DatasetKey, file: ArchiveFile, layout: CsvLayout, path: Path, stack: ExitStack
    ) -> Iterator[pl.DataFrame]:
        """The decoded blocks of the downloaded file, oldest rows first (in a thread)."""
        if not self.order_may_be_reversed:
            stream = open_member(path, file.name, stack)
            return iter_csv_frames(stream, file.name, layout, block_bytes=self.block_bytes)
        # the file's order is not known: decompress it to disk (its integrity proven
        # before a row is read), then read it forward or backward
        plain = stack.enter_context(self._temp_file(file.name + ".csv"))
        decompress_to(path, file.name, plain)
        forward = iter_csv_frames(
            stack.enter_context(open(plain.name, "rb")),  # noqa: SIM115 - on the stack
            file.name,
            layout,
            block_bytes=self.block_bytes,
        )
        backward = iter_csv_frames_backward(
            stack.enter_context(open(plain.name, "rb")),  # noqa: SIM115 - on the stack
            file.name,
            layout,
            block_bytes=self.block_bytes,
        )
        top, bottom = next(forward, None), next(backward, None)
        if top is None or bottom is None:
            return iter(())
        top_ts = self.to_rows(key, file, top, FileState()).get_column("ts")
        bottom_ts = self.to_rows(key, file, bottom, FileState()).get_column("ts")
        if top_ts.len() and bottom_ts.len() and top_ts.min() > bottom_ts.max():  # type: ignore[operator]
            return itertools.chain([bottom], backward)  # newest first: read it backward
        return itertools.chain([top], forward)

    async def aclose(self) -> None:
        await self.downloader.aclose()
