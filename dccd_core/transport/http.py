"""The one HTTP client of dccd: JSON GETs with retries, rate-limit pauses and error mapping.

One ``HttpClient`` (one pooled ``httpx.AsyncClient``) per exchange. Every request goes
through ``get``, which owns, exactly once for the whole code base:

* pacing: the exchange's ``WeightLimiter`` (and a per-host limiter where an exchange
  meters hosts separately, e.g. Binance spot vs USD-M futures); a
  ``SharedWeightLimiter`` when the budget is shared across processes and machines;
* rate limits: a 429/418 closes a *shared pause gate* for ``Retry-After`` seconds, so
  every request to that exchange waits, not just the one that was refused (sending on
  after a 429 is how an IP ban, 418, is earned), and tells the limiter (a shared one
  holds the other processes too); repeated 418 -> ``RateLimited``;
* transient faults: timeouts, resets, 5xx, invalid or truncated JSON -> retried with
  full-jitter backoff, ``RetryExhausted`` after the budget;
* API errors: the exchange's table of documented error codes (``errors``, an
  ``ErrorTable`` declared by each source, see ``dccd_core.transport.errors``) decides
  what an error body means, whatever the status it came with: Binance answers HTTP 500
  ``{"code":-1000,...}`` ("unknown outcome": retry), Bitfinex HTTP 500
  ``["error",10020,"limit: invalid"]`` (a bad parameter: final), Kraken HTTP 200
  ``{"error":["EService:Busy"]}`` (retry). A body the table does not know keeps its
  status's meaning; a 200 whose body reports an error is caught by the source's
  ``check_payload`` hook (never mistaken for an empty page).

httpx exceptions and error bodies are translated to the dccd tree here and nowhere else::

    httpx.TimeoutException           -> TransientError("timeout") -+
    httpx.TransportError             -> TransientError("connect") -+-> retried, backoff
    bad JSON                         -> TransientError("json")    -+   -> RetryExhausted
    table: transient (any status)    -> TransientError("server")  -+
    5xx not in the table             -> TransientError("server")  -+
    table: rate_limit (any status)   -> pause gate (Retry-After or the table's pause)
    429 / 418 not in the table       -> pause gate                   -> RateLimited
    table: permanent, 4xx not in it  -> ExchangeError (the exchange's own message;
                                        a 5xx/200 body goes through check_payload first)
    200 not in the table             -> check_payload (may raise ExchangeError)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import orjson

from dccd_core.domain import ExchangeError, RateLimited, RetryExhausted

from .errors import ErrorTable, Fault, error_entries
from .limiter import WeightLimiter
from .retry import DEFAULT_RETRY, RetryPolicy, TransientError, should_retry
from .tls import default_tls_context

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


def _retry_after_s(response: httpx.Response, default: float = _DEFAULT_PAUSE_S) -> float:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return default
    try:
        return max(0.0, float(raw))
    except ValueError:
        return default


def _error_message(response: httpx.Response) -> str:
    """The exchange's own words: Binance ``{"code":-1121,"msg":"Invalid symbol."}`` ->
    ``Invalid symbol. (code -1121)``; a body that is not JSON, its first 300 characters."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300].strip() or response.reason_phrase
    entries = error_entries(body)
    if entries:
        return "; ".join(message for _, message in entries)[:300]
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
        errors: ErrorTable | None = None,
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
        self.errors = errors
        self.stats = HttpStats()
        self._host_limiters: dict[str, WeightLimiter] = {}
        self._paused_until = 0.0  # monotonic; the shared pause gate
        self._rng = random.Random()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            verify=default_tls_context(),
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

    def _pause(self, seconds: float, status: int, url: str, reason: str = "") -> None:
        now = time.monotonic()
        until = now + seconds
        if until > self._paused_until:
            # count only the time this pause adds to one already running
            self.stats.pause_s += until - max(now, self._paused_until)
            self._paused_until = until
        self.stats.rate_limit_pauses += 1
        log.warning(
            "%s answered %d%s for %s: pausing every request to %s for %.1fs",
            self.exchange,
            status,
            f" ({reason})" if reason else "",
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
                    said = f", {signal.reason}" if signal.reason else ""
                    raise RateLimited(
                        f"{self.exchange} keeps rate-limiting us (HTTP {signal.status}{said}, "
                        f"Retry-After {signal.retry_after_s:.0f}s): wait before retrying and "
                        "lower the concurrency or the request rate"
                    ) from last_error
                self._pause(signal.retry_after_s, signal.status, path_or_url, signal.reason)
                if limiter is not None:
                    await limiter.pause(signal.retry_after_s)
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
        """The JSON body of a good reply; raise what a bad one means (module docstring)."""
        status = response.status_code
        try:
            body = orjson.loads(response.content)
            parsed = True
        except orjson.JSONDecodeError:
            body, parsed = None, False
        if parsed and self.errors is not None:
            found = self.errors.classify(body)
            if found is not None:
                self._raise_fault(self.errors, *found, response, body, url)
        if status in (418, 429):
            raise _RateLimitSignal(status, _retry_after_s(response))
        if status >= 500:
            said = _error_message(response) if parsed else ""
            raise TransientError(
                f"HTTP {status} from {url}" + (f": {said}" if said else ""), "server"
            )
        if status >= 400:
            raise ExchangeError(
                f"{self.exchange} refused {url} (HTTP {status}): {_error_message(response)}"
            )
        if not parsed:
            raise TransientError(
                f"invalid or truncated JSON from {url} ({len(response.content)} bytes)", "json"
            )
        return body

    def _raise_fault(
        self,
        table: ErrorTable,
        fault: Fault,
        said: str,
        response: httpx.Response,
        body: Any,
        url: str,
    ) -> NoReturn:
        """Raise what the exchange's error ``table`` says ``body`` means."""
        status = response.status_code
        if fault is Fault.TRANSIENT:
            raise TransientError(
                f"{self.exchange} answered HTTP {status} for {url}: {said}", "server"
            )
        if fault is Fault.RATE_LIMIT:
            pause = _retry_after_s(response, table.rate_limit_pause_s)
            raise _RateLimitSignal(status, pause, said)
        # permanent: the source's own reading first (UnknownSymbol, its wording), then ours
        if self.check_payload is not None and (status < 400 or status >= 500):
            self.check_payload(body)
        raise ExchangeError(f"{self.exchange} refused {url} (HTTP {status}): {said}")

    # -- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool (and a shared budget's database connections)."""
        try:
            await self._client.aclose()
        finally:
            limiters = [self.limiter, *self._host_limiters.values()]
            for limiter in {id(x): x for x in limiters if x is not None}.values():
                await limiter.aclose()

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

    def __init__(self, status: int, retry_after_s: float, reason: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.retry_after_s = retry_after_s
        self.reason = reason
