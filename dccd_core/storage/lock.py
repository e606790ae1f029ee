"""One writer at a time per dataset: across processes, threads and async tasks.

A merge-write reads a period file, merges and replaces it; two writers doing that at
once would each drop the other's rows. ``filelock`` serialises processes, but an OS
file lock is per process (and ``FileLock`` objects are reentrant), so threads of one
process are serialised first by a process-wide ``RLock`` per lock file. Async tasks
call the store synchronously (or through a thread), so the same two locks cover them.

The lock is reentrant within one thread: a store operation may call another (e.g.
``record_coverage`` rebuilding coverage) while holding it.

On an object store (an ``ObjectPath``) the file lock is replaced by a lease object in
the bucket (``lease.ObjectLease``, same interface), which serialises writers on any
number of machines.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout

from dccd_core.domain import StoreError

from .lease import ObjectLease
from .objectstore import ObjectPath

__all__ = ["DEFAULT_LOCK_TIMEOUT_S", "ThreadLock", "dataset_lock", "process_locks"]

DEFAULT_LOCK_TIMEOUT_S = 600.0
"""Long enough for the biggest period rewrite, short enough that a stuck writer shows."""


class ThreadLock(Protocol):
    """A ``threading.Lock`` or ``RLock``: acquired with a timeout, released."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


_registry_guard = threading.Lock()
_registry: dict[tuple[str, bool], tuple[ThreadLock, FileLock | ObjectLease]] = {}


def process_locks(
    path: Path, *, reentrant: bool = True
) -> tuple[ThreadLock, FileLock | ObjectLease]:
    """The process-wide thread lock and the file lock of the lock file ``path``, the
    same pair for every caller (an OS file lock is per process: threads queue on the
    thread lock first). ``reentrant=False``: a plain ``Lock``, which any thread may
    release (a lock taken in a worker thread for an async caller). On an object store
    the second lock is the dataset's lease (``lease.ObjectLease``)."""
    name = str(path) if isinstance(path, ObjectPath) else os.fspath(path.absolute())
    with _registry_guard:
        pair = _registry.get((name, reentrant))
        if pair is None:
            # thread_local=False: the thread lock already admits one thread at a time,
            # and the FileLock's reentrancy counter must be shared by nested calls.
            thread_lock = threading.RLock() if reentrant else threading.Lock()
            cross: FileLock | ObjectLease = (
                ObjectLease(path)
                if isinstance(path, ObjectPath)
                else FileLock(name, thread_local=False)
            )
            pair = (thread_lock, cross)
            _registry[(name, reentrant)] = pair
        return pair


@contextmanager
def dataset_lock(path: Path, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the dataset lock at ``path`` (created with its folder when missing)."""
    thread_lock, file_lock = process_locks(path)
    if not thread_lock.acquire(timeout=timeout_s):
        raise StoreError(f"timed out after {timeout_s:g}s waiting for lock {path} (this process)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            file_lock.acquire(timeout=timeout_s)
        except Timeout:
            raise StoreError(
                f"timed out after {timeout_s:g}s waiting for lock {path}: another process is "
                "writing this dataset"
            ) from None
        try:
            yield
        finally:
            file_lock.release()
    finally:
        thread_lock.release()
