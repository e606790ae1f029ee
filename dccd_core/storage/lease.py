"""One writer per dataset across machines on an object store: a lease object.

A lock file works only where every writer shares one kernel. On a bucket the dataset
lock is an object, ``{root}/.locks/{dataset}.lock``, holding who owns it and until
when (JSON: ``owner``, ``expires_ns``), taken and given back only by conditional PUTs,
which S3 (since 2024), MinIO, moto and most S3-compatible servers honour:

* **take**: ``PUT If-None-Match: *`` creates it; exactly one contender succeeds;
* **take over** a lease past its expiry (its holder died, e.g. ``kill -9``):
  ``PUT If-Match: <etag read>``; of several contenders only the first matches;
* **renew**: a heartbeat thread re-PUTs it ``If-Match`` its own etag every third of
  the TTL, so a long period rewrite keeps it;
* **release**: ``PUT If-Match`` with ``expires_ns = 0`` (never a DELETE, which S3
  cannot make conditional everywhere: a holder whose lease was taken over must not
  remove the new holder's), so the next contender takes it over at once.

A killed writer blocks the dataset for at most one TTL (``lease_ttl_s``, 30 s by
default). Expiry is judged on the contender's clock against the holder's: machines
must keep their clocks within a small part of the TTL (NTP does). A holder whose
heartbeat fails (the lease was taken over after a stall longer than the TTL, or the
store is unreachable) logs an error and stops renewing; it cannot be fenced out of a
PUT it is already making: keep the TTL well above the longest pause a process can
take.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time

from filelock import Timeout

from dccd_core.domain import StoreError

from .objectstore import ObjectPath

__all__ = ["ObjectLease"]

logger = logging.getLogger(__name__)

_POLL_S = (0.05, 1.0)  # first and longest wait between two attempts


class ObjectLease:
    """The lease at ``path``, with the interface of the ``FileLock`` it replaces:
    ``acquire(timeout=)`` (``filelock.Timeout`` when it expires) and ``release()``,
    reentrant through a counter (the thread lock in ``lock`` admits one thread)."""

    def __init__(self, path: ObjectPath, ttl_s: float | None = None) -> None:
        self.path = path
        self.ttl_s = float(ttl_s if ttl_s is not None else path.options.lease_ttl_s)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._count = 0
        self._etag: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._guard = threading.Lock()  # the heartbeat and release both swap the etag
        self.lost = False

    @property
    def is_locked(self) -> bool:
        return self._count > 0

    def _body(self, expires_ns: int) -> bytes:
        return json.dumps({"owner": self.owner, "expires_ns": expires_ns}).encode()

    def _fresh(self) -> bytes:
        return self._body(time.time_ns() + int(self.ttl_s * 1e9))

    def acquire(self, timeout: float = -1) -> None:
        """Take the lease, waiting up to ``timeout`` s (negative: forever)."""
        if self._count:
            self._count += 1
            return
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        deadline = None if timeout < 0 else time.monotonic() + timeout
        wait = _POLL_S[0]
        while True:
            try:
                self._etag = self.path.put_conditional(self._fresh(), etag=None)
                break
            except AlreadyExistsError:
                pass
            if self._take_over_expired(PreconditionError):
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(str(self.path))
            left = wait if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(wait, left))
            wait = min(wait * 2, _POLL_S[1])
        self._count = 1
        self.lost = False
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew, name=f"dccd-lease-{self.path.name}", daemon=True
        )
        self._heartbeat.start()

    def _take_over_expired(self, refused: type[Exception]) -> bool:
        """Take over the existing lease if it expired (or was released); True if taken."""
        try:
            body, etag = self.path.get_with_etag()
        except FileNotFoundError:  # released by a DELETE or removed by hand: retry create
            return False
        try:
            expires_ns = int(json.loads(body)["expires_ns"])
            holder = json.loads(body).get("owner")
        except (ValueError, KeyError, TypeError):
            expires_ns, holder = 0, "?"  # unreadable: treat as expired, never wait forever
        if expires_ns > time.time_ns():
            return False
        try:
            self._etag = self.path.put_conditional(self._fresh(), etag=etag)
        except refused:  # another contender took it first
            return False
        if expires_ns:
            logger.warning("took over the expired lease %s of %s", self.path, holder)
        return True

    def _renew(self) -> None:
        from obstore.exceptions import PreconditionError

        while not self._stop.wait(self.ttl_s / 3):
            with self._guard:
                if self._stop.is_set():
                    return
                try:
                    self._etag = self.path.put_conditional(self._fresh(), etag=self._etag)
                except (PreconditionError, FileNotFoundError, StoreError) as exc:
                    self.lost = True
                    logger.error(
                        "lost the writer lease %s (%s): another writer may take this "
                        "dataset; its commits from now on are not serialised",
                        self.path,
                        exc,
                    )
                    return

    def release(self, force: bool = False) -> None:
        """Give the lease back (the last of nested acquires does)."""
        if not self._count:
            return
        self._count = 0 if force else self._count - 1
        if self._count:
            return
        from obstore.exceptions import PreconditionError

        self._stop.set()
        with self._guard:
            etag, self._etag = self._etag, None
            if self.lost or etag is None:
                return
            try:
                self.path.put_conditional(self._body(0), etag=etag)
            except (PreconditionError, FileNotFoundError):
                logger.warning("the writer lease %s was taken over before release", self.path)
            except StoreError as exc:  # unreachable: it expires by itself
                logger.warning("could not release the writer lease %s: %s", self.path, exc)
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=1.0)
            self._heartbeat = None
