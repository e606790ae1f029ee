"""One archive file downloaded to a temp file and checked against its published sha256.

Why a temp file: a zip's directory is at its end, and a file must be verified whole
before one of its rows is trusted; holding a month of trades in memory is what the
archives are meant to avoid. The digest is computed while the bytes arrive
(``Downloader.fetch_to``), so verification costs no second read.

Every way a file cannot be had becomes ``ArchiveUnavailable`` (the planner then fetches
its window over REST): not published (404), a missing or unreadable checksum file, a
checksum that does not match (Binance has published wrong checksums and replaced files
after publication), a download that never completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import IO

from dccd_core.domain import TransportError
from dccd_core.transport.download import Downloaded, Downloader, FileMissing

from .base import ArchiveFile, ArchiveUnavailable

__all__ = ["Fetched", "fetch_published", "fetch_verified", "parse_checksum"]

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_checksum(text: str, name: str) -> str:
    """The sha256 of a ``<hex>  <file name>`` line (sha256sum's format, the one
    data.binance.vision publishes), lower-case; ``ArchiveUnavailable`` if unreadable."""
    fields = text.split()
    if not fields or not _HEX64.match(fields[0]):
        raise ArchiveUnavailable(name, f"unreadable checksum file ({text[:80]!r})")
    if len(fields) > 1 and fields[1].lstrip("*") != name:
        raise ArchiveUnavailable(name, f"the checksum file names another file ({fields[1]})")
    return fields[0].lower()


async def fetch_published(downloader: Downloader, file: ArchiveFile) -> str | None:
    """The sha256 published for ``file`` now; None where none is published (no checksum
    path, the checksum file gone or unreadable). ``TransportError`` when unreachable."""
    if file.checksum_path is None:
        return None
    try:
        raw = await downloader.fetch_bytes(file.checksum_path)
    except FileMissing:
        return None
    try:
        return parse_checksum(raw.decode("utf-8", "replace"), file.name)
    except ArchiveUnavailable:
        return None


class Fetched:
    """A downloaded file's digest and the published one (None where none is published)."""

    __slots__ = ("published_sha256", "sha256", "size")

    def __init__(self, sha256: str, published_sha256: str | None, size: int) -> None:
        self.sha256 = sha256
        self.published_sha256 = published_sha256
        self.size = size


async def fetch_verified(downloader: Downloader, file: ArchiveFile, out: IO[bytes]) -> Fetched:
    """Download ``file`` into ``out`` and compare it with its published checksum.

    The checksum and the file are requested at once (the checksum's round trip hides
    behind the file's instead of preceding it); a file whose checksum is missing or
    unreadable is refused as soon as that is known, its download cancelled. Nothing of
    the file is returned, so nothing of it is read, before its digest matched."""
    download = asyncio.create_task(_fetch_file(downloader, file, out))
    try:
        published = await _fetch_checksum(downloader, file)
        got = await download
    except TransportError as exc:
        raise ArchiveUnavailable(file.name, f"download failed ({exc})") from exc
    finally:
        if not download.done():
            download.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await download  # settled (and its error, if any, retrieved) before ``out`` goes
    if published is not None and got.sha256 != published:
        raise ArchiveUnavailable(
            file.name,
            f"checksum mismatch (published {published[:16]}..., downloaded "
            f"{got.sha256[:16]}...; replaced or corrupt, fetched over REST instead)",
        )
    return Fetched(got.sha256, published, got.size)


async def _fetch_checksum(downloader: Downloader, file: ArchiveFile) -> str | None:
    """The published sha256 (None where the exchange publishes none)."""
    if file.checksum_path is None:
        return None
    try:
        raw = await downloader.fetch_bytes(file.checksum_path)
    except FileMissing:
        # a data file without its .CHECKSUM is either not published yet or
        # half-published: neither can be verified
        raise ArchiveUnavailable(file.name, "missing (no checksum file)") from None
    return parse_checksum(raw.decode("utf-8", "replace"), file.name)


async def _fetch_file(downloader: Downloader, file: ArchiveFile, out: IO[bytes]) -> Downloaded:
    try:
        return await downloader.fetch_to(file.path, out)
    except FileMissing:
        raise ArchiveUnavailable(file.name, "missing") from None
