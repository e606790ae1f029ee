"""``verify_archives``: is what the archive files delivered still what the exchange says?

Two cheap probes over the archive files a dataset ingested in a window (its ledger,
``storage.archive_ledger``):

* the published sha256 of every ingested file is fetched again (a few dozen bytes
  each) and compared with the one recorded at ingestion: exchanges have replaced
  files after publication, and a changed checksum means the stored rows may not be
  what the exchange now publishes;
* one sampled span inside an ingested file (one REST page of candles, a minute of
  trades) is fetched over REST and its row count compared with the stored rows of the
  same span: an archive that silently lacks or duplicates rows shows here.

It makes no decision about what to do: the ``archives_verified`` asset check reports
it, and ``dccd backfill --archives off`` over the window re-fetches from REST.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dccd_core.domain import (
    NS_PER_DAY,
    ArchiveGranularity,
    DatasetKey,
    DccdError,
    TransportError,
    iso_datetime,
)
from dccd_core.sources.archives.base import ArchiveFile
from dccd_core.storage import Store
from dccd_core.storage.archive_ledger import LedgerEntry, read_archive_ledger
from dccd_core.transport.paginate import PageStats
from dccd_core.transport.paginate.chunks import source_page_limit

if TYPE_CHECKING:
    from dccd_core.sources.archives.base import ArchiveReader
    from dccd_core.sources.base import Source

__all__ = ["ArchiveVerification", "ChecksumChange", "verify_archives"]

#: the trades sample: one minute (a page or a few of a busy market)
TRADE_SAMPLE_NS = 60 * 1_000_000_000
#: published checksums re-fetched at once (each a few dozen bytes)
CHECKSUMS_IN_FLIGHT = 8


@dataclass(frozen=True, slots=True)
class ChecksumChange:
    """A file whose published sha256 is no longer the one ingested (``now`` None: the
    file or its checksum is gone)."""

    name: str
    recorded: str | None
    now: str | None


@dataclass(frozen=True, slots=True)
class ArchiveVerification:
    """What ``verify_archives`` found; ``passed`` when nothing disagrees."""

    files: int = 0
    checked: int = 0
    changed: tuple[ChecksumChange, ...] = ()
    #: ``"<file>: <why>"`` for files whose checksum could not be compared
    unverifiable: tuple[str, ...] = ()
    sample_file: str | None = None
    sample: tuple[int, int] | None = None
    stored_rows: int | None = None
    rest_rows: int | None = None
    #: why the REST sample could not be taken (the exchange unreachable, ...)
    sample_error: str | None = None

    @property
    def sample_agrees(self) -> bool:
        return self.stored_rows == self.rest_rows

    @property
    def passed(self) -> bool:
        return not self.changed and self.sample_agrees and self.sample_error is None

    def describe(self) -> str:
        """One line for the check's description."""
        if not self.files:
            return "no archive files ingested in this window: nothing to verify"
        parts = [f"{self.checked}/{self.files} archive file checksum(s) re-fetched"]
        if self.changed:
            names = ", ".join(c.name for c in self.changed[:3])
            parts.append(
                f"{len(self.changed)} changed since ingestion ({names}): re-fetch the window "
                "(dccd backfill --archives off, or auto once the files are fixed)"
            )
        if self.sample is not None:
            a, b = self.sample
            span = f"{iso_datetime(a)} -> {iso_datetime(b)}"
            if self.sample_error is not None:
                parts.append(f"REST sample {span} not taken: {self.sample_error}")
            elif self.sample_agrees:
                parts.append(f"REST sample {span}: {self.rest_rows} rows, as stored")
            else:
                parts.append(
                    f"REST sample {span}: {self.rest_rows} rows, {self.stored_rows} stored "
                    f"(from {self.sample_file})"
                )
        return "; ".join(parts)


def _ingested_file(entry: LedgerEntry) -> ArchiveFile:
    """The ledger's record of a file as the reader's ``ArchiveFile`` (a day or longer)."""
    daily = entry.end_ts - entry.start_ts <= NS_PER_DAY
    return ArchiveFile(
        name=entry.name,
        path=entry.path,
        checksum_path=entry.checksum_path,
        start_ts=entry.start_ts,
        end_ts=entry.end_ts,
        granularity=ArchiveGranularity.DAILY if daily else ArchiveGranularity.MONTHLY,
    )


def _sample_window(
    key: DatasetKey, source: Source, entry: LedgerEntry, start_ts: int, end_ts: int
) -> tuple[int, int] | None:
    """A short span in the middle of ``entry``'s window (clipped to ``[start_ts, end_ts)``)."""
    a, b = max(entry.start_ts, start_ts), min(entry.end_ts, end_ts)
    if b <= a:
        return None
    if key.span is not None:
        limit = source_page_limit(source, key.data_type)
        lo = key.span.floor(a + (b - a) // 2)
        if lo < a:
            lo += key.span.ns
        hi = min(b, lo + limit * key.span.ns)
        return (lo, hi) if hi > lo else None
    lo = a + (b - a) // 2
    return lo, min(b, lo + TRADE_SAMPLE_NS)


async def _rest_rows(key: DatasetKey, source: Source, a: int, b: int) -> int:
    from dccd_core.operations.backfill import rest_chunks

    rows = 0
    walk = rest_chunks(key, source, a, b, 2, PageStats())
    async with contextlib.aclosing(walk):
        async for chunk in walk:
            rows += chunk.rows.height
    return rows


async def verify_archives(
    key: DatasetKey,
    store: Store,
    start_ts: int,
    end_ts: int,
    *,
    reader: ArchiveReader | None = None,
    source: Source | None = None,
    archive_url: str | None = None,
    rest_url: str | None = None,
) -> ArchiveVerification:
    """Probe the archive files ``key`` ingested in ``[start_ts, end_ts)`` (see the module
    docstring). With none ingested, nothing is requested. ``reader``/``source``: ready
    ones (the caller closes them); default: built from the registry (``archive_url``,
    ``rest_url`` or the environment's origins) and closed here."""
    entries = read_archive_ledger(store.root, key, start_ts, end_ts)
    if not entries:
        return ArchiveVerification()
    from dccd_core.sources.registry import build_archive_reader, build_source

    async with contextlib.AsyncExitStack() as stack:
        if reader is None:
            reader = build_archive_reader(key.exchange, archive_url=archive_url)
            if reader is not None:
                stack.push_async_callback(reader.aclose)
        if source is None:
            source = build_source(key.exchange, rest_url=rest_url)
            stack.push_async_callback(source.aclose)
        sampled = entries[len(entries) // 2]
        window = _sample_window(key, source, sampled, start_ts, end_ts)
        # the re-fetches and the REST sample are independent small requests: in flight
        # together (a year of monthly files is 12 round trips, not 12 in a row)
        gate = asyncio.Semaphore(CHECKSUMS_IN_FLIGHT)

        async def published(entry: LedgerEntry) -> str | Exception | None:
            assert reader is not None
            async with gate:
                try:
                    return await reader.fetch_published_sha256(_ingested_file(entry))
                except TransportError as exc:
                    return exc

        async def rest_sample() -> int | DccdError | None:
            if window is None:
                return None
            assert source is not None
            try:
                return await _rest_rows(key, source, *window)
            except DccdError as exc:
                return exc

        checkable: list[LedgerEntry] = []
        unverifiable: list[str] = []
        for entry in entries:
            if entry.checksum_path is None or reader is None:
                unverifiable.append(f"{entry.name}: no published checksum")
            else:
                checkable.append(entry)
        sample_task = asyncio.ensure_future(rest_sample())
        try:
            nows = await asyncio.gather(*(published(entry) for entry in checkable))
            rest_or_error = await sample_task
        finally:  # a re-fetch that raised leaves no sample request behind
            if not sample_task.done():
                sample_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sample_task
        changed: list[ChecksumChange] = []
        checked = 0
        for entry, now in zip(checkable, nows, strict=True):
            if isinstance(now, Exception):
                unverifiable.append(f"{entry.name}: {now}")
                continue
            checked += 1
            if now != entry.published_sha256:
                changed.append(ChecksumChange(entry.name, entry.published_sha256, now))
        stored = rest = None
        error = None
        if window is not None:
            stored = store.read(key, window[0], window[1]).height
            if isinstance(rest_or_error, DccdError):
                error = str(rest_or_error)
            else:
                rest = rest_or_error
        return ArchiveVerification(
            files=len(entries),
            checked=checked,
            changed=tuple(changed),
            unverifiable=tuple(unverifiable),
            sample_file=sampled.name if window is not None else None,
            sample=window,
            stored_rows=stored,
            rest_rows=rest,
            sample_error=error,
        )
