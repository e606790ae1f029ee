"""Downloaded archive files shared by the readers of one process (BitMEX's daily dump).

Why: BitMEX publishes ONE file per day holding every symbol's trades
(``/data/trade/YYYYMMDD.csv.gz``), and each dataset is one symbol, so a backfill of N
BitMEX symbols downloaded every day's dump N times. A reader whose files hold several
datasets (``HttpArchiveReader.shares_files``) takes its files from here instead: each
URL is downloaded and verified (``fetch.fetch_verified``) once, then read by every
dataset that asks for it while it is cached.

How, and what it guarantees:

* Keyed by URL (origin + path): two archive hosts never share a file.
* One download per URL at a time: a second reader asking while the first downloads
  waits for that download and shares its outcome (the file, or the same
  ``ArchiveUnavailable``: a missing or corrupt day is the same for every symbol). If
  the downloading reader is cancelled, a waiter downloads the file itself. Sharing
  an in-flight download needs the same event loop; readers on other loops (threads)
  download on their own and still share finished files.
* Reused only while still the bytes verified: the file on disk must have the size and
  mtime it had when written, and where the exchange publishes a checksum it is
  fetched again (one small request) and must still equal the cached file's sha256 (a
  file replaced after publication is downloaded again).
* Bounded: at most ``max_files`` files and ``max_bytes`` bytes are kept, least
  recently used evicted first; a file being read (leased) is never deleted under its
  reader, and a file larger than the whole budget is not kept at all (deleted when its
  readers are done). So a long backfill does not fill the disk: the cache holds the
  last few days, which is what datasets backfilled side by side (or one after another
  over a short range) ask for. Datasets backfilled one after another over more days
  than the cache holds download the older days again: correct, only slower.
* Temp files live in the reader's ``temp_dir`` (default: the system's), are deleted on
  eviction, when a download fails, and at interpreter exit (``atexit``).

A cache across processes (Dagster runs each asset in its own) would need a lake-side
store with file locking and clean-up; this one is per process on purpose.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from dccd_core.transport.download import Downloader

from .base import ArchiveFile, ArchiveUnavailable
from .fetch import Fetched, fetch_published, fetch_verified

__all__ = [
    "SHARED_DOWNLOADS",
    "SHARED_MAX_BYTES",
    "SHARED_MAX_FILES",
    "SharedDownloads",
    "SharedFile",
]

#: files kept at most (a BitMEX day's dump: tens to a few hundred MB)
SHARED_MAX_FILES = 8
#: bytes kept at most, over all files
SHARED_MAX_BYTES = 2 << 30


@dataclass(eq=False, slots=True)
class SharedFile:
    """One downloaded, verified file; ``path`` stays valid until ``release``."""

    url: str
    path: Path
    fetched: Fetched
    #: (size, mtime_ns) of the file as written: a changed file is not reused
    stamp: tuple[int, int]
    #: leases held (readers reading it); never deleted while > 0
    pins: int = 0
    #: in the index (False: evicted or never admitted; deleted at its last release)
    cached: bool = False
    deleted: bool = False


@dataclass(eq=False, slots=True)
class _Inflight:
    """A download under way: its outcome, and how many readers wait for it."""

    future: asyncio.Future[SharedFile]
    joined: int = 0


@dataclass(eq=False)
class SharedDownloads:
    """The process's shared archive downloads (module docstring). Thread-safe."""

    max_files: int = SHARED_MAX_FILES
    max_bytes: int = SHARED_MAX_BYTES
    #: files downloaded / leases served from an existing file (tests, benchmarks)
    downloads: int = 0
    reuses: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _files: OrderedDict[str, SharedFile] = field(default_factory=OrderedDict)
    _inflight: dict[str, _Inflight] = field(default_factory=dict)

    def __post_init__(self) -> None:
        atexit.register(self.clear)

    # -- leasing -----------------------------------------------------------------------

    async def acquire(
        self, downloader: Downloader, file: ArchiveFile, temp_dir: str | None
    ) -> SharedFile:
        """``file`` downloaded and verified, leased to the caller: read ``path``, then
        ``release`` it (exactly once). ``ArchiveUnavailable`` as ``fetch_verified``."""
        url = downloader.origin + file.path
        while True:
            cached = self._pin_cached(url)
            if cached is not None:
                if await self._still_valid(downloader, file, cached):
                    return cached
                self._drop(cached)
                continue
            with self._lock:
                waiting = self._inflight.get(url)
                if waiting is not None and waiting.future.get_loop() is asyncio.get_running_loop():
                    waiting.joined += 1
                else:
                    waiting = None
            if waiting is None:
                return await self._download(downloader, file, temp_dir, url)
            got = await self._wait(waiting)
            if got is not None:
                return got
            # the downloading reader was cancelled: try again (download it ourselves)

    def release(self, shared: SharedFile) -> None:
        """End one lease of ``shared`` (its file may be deleted now)."""
        with self._lock:
            shared.pins -= 1
            doomed = self._evict()
            if shared.pins == 0 and not shared.cached and not shared.deleted:
                shared.deleted = True
                doomed.append(shared.path)
        _unlink(doomed)

    def clear(self) -> None:
        """Forget every cached file and delete those not leased (at exit: all of them)."""
        with self._lock:
            files = list(self._files.values())
            self._files.clear()
            doomed = []
            for shared in files:
                shared.cached = False
                if shared.pins == 0 and not shared.deleted:
                    shared.deleted = True
                    doomed.append(shared.path)
        _unlink(doomed)

    @property
    def cached_files(self) -> int:
        with self._lock:
            return len(self._files)

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return sum(f.fetched.size for f in self._files.values())

    # -- the pieces ----------------------------------------------------------------------

    def _pin_cached(self, url: str) -> SharedFile | None:
        with self._lock:
            shared = self._files.get(url)
            if shared is None:
                return None
            shared.pins += 1
            self._files.move_to_end(url)
            return shared

    async def _still_valid(
        self, downloader: Downloader, file: ArchiveFile, shared: SharedFile
    ) -> bool:
        """The cached bytes are still the file as verified, and as published now."""
        try:
            stat = os.stat(shared.path)
        except OSError:
            return False
        if (stat.st_size, stat.st_mtime_ns) != shared.stamp:
            return False
        if file.checksum_path is not None:
            try:
                published = await fetch_published(downloader, file)
            except BaseException:
                self.release(shared)
                raise
            if published is None or published != shared.fetched.sha256:
                return False
        with self._lock:
            self.reuses += 1
        return True

    def _drop(self, shared: SharedFile) -> None:
        """A cached file no longer to be reused: out of the index, our lease ended."""
        with self._lock:
            if self._files.get(shared.url) is shared:
                del self._files[shared.url]
            shared.cached = False
        self.release(shared)

    async def _wait(self, waiting: _Inflight) -> SharedFile | None:
        """The outcome of another reader's download (None: it was cancelled). Our lease
        was counted in ``joined``; cancelled while waiting, we give it back once the
        download is done."""
        try:
            shared = await asyncio.shield(waiting.future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if waiting.future.cancelled() and (task is None or not task.cancelling()):
                return None
            waiting.future.add_done_callback(self._release_unwanted)
            raise
        except ArchiveUnavailable as exc:  # the same verdict, raised afresh here
            raise ArchiveUnavailable(exc.name, exc.reason) from None
        with self._lock:
            self.reuses += 1
        return shared

    def _release_unwanted(self, future: asyncio.Future[SharedFile]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.release(future.result())

    async def _download(
        self, downloader: Downloader, file: ArchiveFile, temp_dir: str | None, url: str
    ) -> SharedFile:
        """Download ``url`` as the one reader doing so; waiters get the outcome."""
        waiting = _Inflight(asyncio.get_running_loop().create_future())
        with self._lock:
            self._inflight[url] = waiting
        path: Path | None = None
        try:
            with tempfile.NamedTemporaryFile(
                prefix="dccd-archive-shared-",
                suffix=f"-{file.name}",
                dir=temp_dir,
                delete=False,
            ) as out:
                path = Path(out.name)
                fetched = await fetch_verified(downloader, file, out)
            stat = os.stat(path)
        except BaseException as exc:
            if path is not None:
                _unlink([path])
            with self._lock:
                self._inflight.pop(url, None)
            if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
                waiting.future.cancel()
            else:
                waiting.future.set_exception(exc)
                waiting.future.exception()  # retrieved: nobody may be waiting
            raise
        shared = SharedFile(url, path, fetched, (stat.st_size, stat.st_mtime_ns))
        with self._lock:
            self._inflight.pop(url, None)
            self.downloads += 1
            shared.pins = 1 + waiting.joined
            doomed = self._admit(shared)
        _unlink(doomed)
        waiting.future.set_result(shared)
        return shared

    def _admit(self, shared: SharedFile) -> list[Path]:
        """Index ``shared`` (under the lock) unless it exceeds the whole budget; the
        paths to delete (an older copy of the URL, files evicted to make room)."""
        doomed: list[Path] = []
        if shared.fetched.size > self.max_bytes or self.max_files < 1:
            return doomed  # not kept: deleted at its last release
        old = self._files.pop(shared.url, None)
        if old is not None:  # downloaded again (replaced, or another loop's copy)
            old.cached = False
            if old.pins == 0 and not old.deleted:
                old.deleted = True
                doomed.append(old.path)
        self._files[shared.url] = shared
        shared.cached = True
        return doomed + self._evict()

    def _evict(self) -> list[Path]:
        """Least recently used, unleased files out until within bounds (under the
        lock); leased ones stay (evicted at a later release)."""
        doomed: list[Path] = []
        total = sum(f.fetched.size for f in self._files.values())
        for url, shared in list(self._files.items()):
            if len(self._files) <= self.max_files and total <= self.max_bytes:
                break
            if shared.pins > 0:
                continue
            del self._files[url]
            shared.cached = False
            shared.deleted = True
            total -= shared.fetched.size
            doomed.append(shared.path)
        return doomed


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


#: the one instance the readers of this process share
SHARED_DOWNLOADS = SharedDownloads()
