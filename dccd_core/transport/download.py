"""Bulk-file downloads: one file streamed to disk with its sha256 computed on the way.

The JSON client (``http.py``) holds whole bodies in memory; an archive file (a month of
aggregate trades is hundreds of MB) must not be. ``Downloader.fetch_to`` streams the
body in chunks into a file the caller owns and hashes every chunk as it is written, so
verifying a published checksum costs no second pass over the file.

httpx errors are mapped here, once (the same policy as ``http.py``)::

    404 / 410                        -> FileMissing      (the file is not published)
    timeout, reset, 5xx, short body  -> retried with full-jitter backoff,
                                        the file rewritten from its start
                                     -> RetryExhausted after the budget
    429 / 418                        -> retried like a 5xx (a file host has no weight
                                        budget to pause; backoff spaces the retries)
    other 4xx                        -> ExchangeError
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from types import TracebackType
from typing import IO

import httpx

from dccd_core.domain import ExchangeError, RetryExhausted, TransportError

from .retry import RetryPolicy, TransientError
from .tls import default_tls_context

__all__ = ["DOWNLOAD_RETRY", "Downloaded", "Downloader", "FileMissing"]

#: bulk files are few and large: fewer, longer-spaced attempts than JSON pages
DOWNLOAD_RETRY = RetryPolicy(attempts=4, base_s=0.5, max_s=8.0)
_CHUNK_BYTES = 1 << 20


class FileMissing(TransportError):
    """The server says the file does not exist (HTTP 404/410)."""


@dataclass(frozen=True, slots=True)
class Downloaded:
    """What ``fetch_to`` wrote: the body's sha256 (hex) and its size."""

    sha256: str
    size: int


class Downloader:
    """Streams files from one origin (``scheme://host[:port]``) for one exchange."""

    def __init__(
        self,
        exchange: str,
        origin: str,
        *,
        retry: RetryPolicy = DOWNLOAD_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.exchange = exchange
        self.origin = origin.rstrip("/")
        self.retry = retry
        self.requests = 0
        self.retries = 0
        self._rng = random.Random()
        self._transport = transport
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The connection pool, opened on first use (a reader that only plans opens none)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.origin,
                timeout=httpx.Timeout(self._timeout_s),
                transport=self._transport,
                follow_redirects=True,
                verify=default_tls_context(),
            )
        return self._client

    async def fetch_to(self, path: str, out: IO[bytes]) -> Downloaded:
        """Stream ``path`` into ``out`` (truncated first: a retry starts over)."""
        return await self._retrying(path, out)

    async def fetch_bytes(self, path: str, *, max_bytes: int = 1 << 16) -> bytes:
        """A small file (a published checksum) whole; refused past ``max_bytes``."""
        import io

        buffer = io.BytesIO()
        await self._retrying(path, buffer, max_bytes=max_bytes)
        return buffer.getvalue()

    async def _retrying(
        self, path: str, out: IO[bytes], max_bytes: int | None = None
    ) -> Downloaded:
        failures = 0
        while True:
            try:
                return await self._once(path, out, max_bytes)
            except TransientError as exc:
                failures += 1
                if failures >= self.retry.attempts:
                    raise RetryExhausted(
                        f"{self.exchange}: download of {path} failed {failures} times "
                        f"(last: {exc}); the archive host or the network is unwell"
                    ) from exc
                self.retries += 1
                await asyncio.sleep(self.retry.backoff_s(failures - 1, self._rng))

    async def _once(self, path: str, out: IO[bytes], max_bytes: int | None) -> Downloaded:
        out.seek(0)
        out.truncate()
        digest = hashlib.sha256()
        size = 0
        self.requests += 1
        try:
            async with self.client.stream("GET", path) as response:
                self._check_status(response, path)
                expected = response.headers.get("Content-Length")
                async for chunk in response.aiter_raw(_CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ExchangeError(
                            f"{self.exchange}: {path} is larger than {max_bytes} bytes"
                        )
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout on {path}: {exc!r}", "timeout") from exc
        except httpx.TransportError as exc:
            # a body cut short (RemoteProtocolError) lands here too
            raise TransientError(f"download of {path} broke off: {exc!r}", "connect") from exc
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise TransientError(
                f"{path}: {size} bytes received of {expected} announced", "connect"
            )
        out.flush()
        return Downloaded(digest.hexdigest(), size)

    def _check_status(self, response: httpx.Response, path: str) -> None:
        status = response.status_code
        if status in (404, 410):
            raise FileMissing(f"{self.exchange}: {path} is not published (HTTP {status})")
        if status in (429, 418) or status >= 500:
            raise TransientError(f"HTTP {status} from {path}", "server")
        if status >= 400:
            raise ExchangeError(f"{self.exchange} refused {path} (HTTP {status})")

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Downloader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
