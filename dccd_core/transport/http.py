"""The one HTTP client of dccd: JSON GETs with retries, rate-limit pauses and error mapping.

One ``HttpClient`` (one pooled ``httpx.AsyncClient``) per exchange. Every request goes
through ``get``, which owns, exactly once for the whole code base:

* pacing: the exchange's ``WeightLimiter`` (and a per-host limiter where an exchange
  meters hosts separately, e.g. Binance spot vs USD-M futures);
* rate limits: a 429/418 closes a *shared pause gate* for ``Retry-After`` seconds, so
  every request to that exchange waits, not just the one that was refused (sending on
  after a 429 is how an IP ban, 418, is earned); repeated 418 -> ``RateLimited``;
* transient faults: timeouts, resets, 5xx, invalid or truncated JSON -> retried with
  full-jitter backoff, ``RetryExhausted`` after the budget;
* API errors: other 4xx -> ``ExchangeError`` carrying the exchange's own message; a 200
  whose body reports an error is caught by the source's ``check_payload`` hook (never
  mistaken for an empty page).

httpx exceptions are translated to the dccd tree here and nowhere else::

    httpx.TimeoutException      -> TransientError("timeout")  -> RetryExhausted
    httpx.TransportError        -> TransientError("connect")  -> RetryExhausted
    5xx / bad JSON              -> TransientError             -> RetryExhausted
    429 / 418                   -> pause gate                 -> RateLimited
    other 4xx, check_payload    -> ExchangeError
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from dccd_core.domain import ExchangeError, RateLimited, RetryExhausted

from .limiter import WeightLimiter
from .retry import DEFAULT_RETRY, RetryPolicy, TransientError, should_retry

__all__ = ["HttpClient", "HttpStats", "JsonResponse"]

log = logging.getLogger("dccd.transport")

_DEFAULT_PAUSE_S = 1.0
_MAX_418 = 2


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A decoded JSON body and where it came from.

    ``content``: the raw body, for the rare field a JSON decoder into floats would
    round (Kraken's trade times carry more digits than a float keeps).
    """

    data: Any
    headers: Mapping[str, str]
    status: int
    url: str
    content: bytes = b""


@dataclass(slots=True)
class HttpStats:
    """What the client did: requests sent (retries included), retries, 429/418 pauses."""

    requests: int = 0
    retries: int = 0
    rate_limit_pauses: int = 0
    pause_s: float = 0.0
    status_418: int = 0


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _retry_after_s(response: httpx.Response) -> float:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return _DEFAULT_PAUSE_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        return _DEFAULT_PAUSE_S


def _error_message(response: httpx.Response) -> str:
    """The exchange's own words: Binance ``{"code":-1121,"msg":"Invalid symbol."}``."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("msg", "message", "error", "retMsg", "detail"):
            if body.get(key):
                code = body.get("code", body.get("retCode"))
                return f"{body[key]}" + (f" (code {code})" if code is not None else "")
    return str(body)[:300]


class HttpClient:
    """Async JSON client for one exchange; see the module docstring for the policy."""

    def __init__(
        self,
        exchange: str,
        base_url: str,
        *,
        limiter: WeightLimiter | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        check_payload: Callable[[Any], None] | None = None,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 32,
    ) -> None:
        self.exchange = exchange
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.retry = retry
        self.check_payload = check_payload
        self.stats = HttpStats()
        self._host_limiters: dict[str, WeightLimiter] = {}
        self._paused_until = 0.0  # monotonic; the shared pause gate
        self._rng = random.Random()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"Accept": "application/json", **(headers or {})},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    # -- configuration -----------------------------------------------------------

    def set_host_limiter(self, origin: str, limiter: WeightLimiter) -> None:
        """Meter requests to ``origin`` (scheme://host[:port]) with their own budget."""
        self._host_limiters[_origin(origin)] = limiter

    def _limiter_for(self, url: str) -> WeightLimiter | None:
        if self._host_limiters and "://" in url:
            found = self._host_limiters.get(_origin(url))
            if found is not None:
                return found
        return self.limiter

    # -- the pause gate ------------------------------------------------------------

    @property
    def paused_s(self) -> float:
        """Seconds left before the exchange may be asked again (0 when open)."""
        return max(0.0, self._paused_until - time.monotonic())

    def _pause(self, seconds: float, status: int, url: str) -> None:
        now = time.monotonic()
        until = now + seconds
        if until > self._paused_until:
            # count only the time this pause adds to one already running
            self.stats.pause_s += until - max(now, self._paused_until)
            self._paused_until = until
        self.stats.rate_limit_pauses += 1
        log.warning(
            "%s answered %d for %s: pausing every request to %s for %.1fs",
            self.exchange,
            status,
            url,
            self.exchange,
            seconds,
        )

    async def _wait_gate(self) -> None:
        while (delay := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    # -- requests ------------------------------------------------------------------

    async def _send_once(self, url: str, params: Mapping[str, Any] | None) -> httpx.Response:
        """One request; httpx errors mapped to ``TransientError`` here, once."""
        self.stats.requests += 1
        try:
            return await self._client.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout on {url}: {exc!r}", "timeout") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed on {url}: {exc!r}", "connect") from exc

    async def get(
        self, path_or_url: str, params: Mapping[str, Any] | None = None, *, weight: int = 1
    ) -> JsonResponse:
        """GET a JSON document; ``path_or_url`` is a path on ``base_url`` or an absolute URL."""
        limiter = self._limiter_for(path_or_url)
        transient_failures = 0
        rate_limited = 0
        last_error: BaseException | None = None
        while True:
            await self._wait_gate()
            if limiter is not None:
                await limiter.acquire(weight)
                await self._wait_gate()
            try:
                response = await self._send_once(path_or_url, params)
                data = self._decode(response, path_or_url)
            except TransientError as exc:
                last_error = exc
                transient_failures += 1
                if not should_retry(exc) or transient_failures >= self.retry.attempts:
                    raise RetryExhausted(
                        f"{self.exchange}: {path_or_url} failed {transient_failures} times "
                        f"(last: {exc}); the exchange or the network is unwell, retry later "
                        "or raise the retry budget"
                    ) from exc
                self.stats.retries += 1
                await asyncio.sleep(self.retry.backoff_s(transient_failures - 1, self._rng))
                continue
            except _RateLimitSignal as signal:
                rate_limited += 1
                if signal.status == 418:
                    self.stats.status_418 += 1
                if (
                    (signal.status == 418 and self.stats.status_418 >= _MAX_418)
                    or signal.retry_after_s > self.retry.max_pause_s
                    or rate_limited > self.retry.rate_limit_attempts
                ):
                    raise RateLimited(
                        f"{self.exchange} keeps rate-limiting us (HTTP {signal.status}, "
                        f"Retry-After {signal.retry_after_s:.0f}s): wait before retrying and "
                        "lower the concurrency or the request rate"
                    ) from last_error
                self._pause(signal.retry_after_s, signal.status, path_or_url)
                continue
            if limiter is not None:
                limiter.observe(response.headers)
            if self.check_payload is not None:
                self.check_payload(data)
            return JsonResponse(
                data=data,
                headers=response.headers,
                status=response.status_code,
                url=str(response.url),
                content=response.content,
            )

    def _decode(self, response: httpx.Response, url: str) -> Any:
        status = response.status_code
        if status in (418, 429):
            raise _RateLimitSignal(status, _retry_after_s(response))
        if status >= 500:
            self._check_error_body(response)
            raise TransientError(f"HTTP {status} from {url}", "server")
        if status >= 400:
            raise ExchangeError(
                f"{self.exchange} refused {url} (HTTP {status}): {_error_message(response)}"
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise TransientError(
                f"invalid or truncated JSON from {url} ({len(response.content)} bytes)", "json"
            ) from exc

    def _check_error_body(self, response: httpx.Response) -> None:
        """A 5xx whose body is an API error is not transient: Bitfinex answers a bad
        parameter with HTTP 500 and ``["error", 10020, "limit: invalid"]``."""
        if self.check_payload is None:
            return
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return
        self.check_payload(body)

    # -- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _RateLimitSignal(Exception):
    """Internal: a 429/418 to turn into a pause (never escapes ``get``)."""

    def __init__(self, status: int, retry_after_s: float) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after_s = retry_after_s
