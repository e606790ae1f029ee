"""HttpClient: retries, the shared 429/418 pause gate, error mapping (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from dccd_core.domain import ExchangeError, RateLimited, RetryExhausted
from dccd_core.sources.binance.parse import check_payload
from dccd_core.transport import HttpClient, RetryPolicy, WeightLimiter, should_retry
from dccd_core.transport.retry import TransientError

FAST = RetryPolicy(attempts=4, base_s=0.001, max_s=0.01)


def _client(
    handler: Callable[[httpx.Request], httpx.Response],
    retry: RetryPolicy = FAST,
    **kwargs: object,
) -> HttpClient:
    return HttpClient(
        "testex",
        "https://api.test",
        retry=retry,
        transport=httpx.MockTransport(handler),
        **kwargs,  # type: ignore[arg-type]
    )


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=body, headers={"Content-Type": "application/json", **(headers or {})}
    )


async def test_5xx_and_truncated_json_are_retried() -> None:
    replies = iter([_json(b"oops", 502), _json(b'[{"a": 1'), _json(b"[1, 2]")])
    async with _client(lambda request: next(replies)) as client:
        response = await client.get("/x", {"q": "1"})
    assert response.data == [1, 2]
    assert client.stats.requests == 3
    assert client.stats.retries == 2


async def test_timeouts_and_resets_exhaust_the_budget() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise httpx.ReadTimeout("slow", request=request)
        raise httpx.RemoteProtocolError("reset", request=request)

    async with _client(handler) as client:
        with pytest.raises(RetryExhausted, match="failed 4 times"):
            await client.get("/x")
    assert calls == FAST.attempts


async def test_4xx_is_an_exchange_error_with_its_message_and_no_retry() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _json(b'{"code": -1121, "msg": "Invalid symbol."}', 400)

    async with _client(handler) as client:
        with pytest.raises(ExchangeError, match=r"Invalid symbol\. \(code -1121\)"):
            await client.get("/api/v3/klines")
    assert calls == 1


async def test_error_inside_a_200_goes_through_check_payload() -> None:
    body = b'{"code": -1003, "msg": "Too many requests."}'
    async with _client(lambda r: _json(body), check_payload=check_payload) as client:
        with pytest.raises(ExchangeError, match="binance error -1003"):
            await client.get("/x")


async def test_429_pauses_every_request_for_retry_after() -> None:
    """After a 429, no request of the exchange is sent before Retry-After has passed,
    including requests started by other tasks during the pause."""
    sent: list[tuple[float, str]] = []
    refused_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        sent.append((now, request.url.path))
        if request.url.path == "/first" and not refused_at:
            refused_at.append(now)
            return _json(b'{"code": -1003, "msg": "slow down"}', 429, {"Retry-After": "1"})
        return _json(b"[]")

    async with _client(handler) as client:
        first = asyncio.create_task(client.get("/first"))
        await asyncio.sleep(0.05)
        others = [asyncio.create_task(client.get(f"/other{i}")) for i in range(3)]
        await asyncio.gather(first, *others)
    assert refused_at
    after = [t for t, _ in sent if t > refused_at[0]]
    assert len(after) == 4
    assert min(after) - refused_at[0] >= 0.95
    assert client.stats.rate_limit_pauses == 1
    assert 0.9 <= client.stats.pause_s <= 1.1


async def test_repeated_418_raises_rate_limited() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return _json(b'{"code": -1003, "msg": "banned"}', 418, {"Retry-After": "0"})

    async with _client(handler) as client:
        with pytest.raises(RateLimited, match="HTTP 418"):
            await client.get("/x")
    assert client.stats.status_418 == 2


async def test_a_long_retry_after_is_a_ban_not_a_pause() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return _json(b"{}", 429, {"Retry-After": "3600"})

    async with _client(handler) as client:
        with pytest.raises(RateLimited, match="Retry-After 3600s"):
            await client.get("/x")


async def test_absolute_urls_and_host_limiters() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return _json(b"{}", headers={"X-MBX-USED-WEIGHT-1M": "7"})

    main = WeightLimiter(1000, usage_header="X-MBX-USED-WEIGHT-1M")
    other = WeightLimiter(1000, usage_header="X-MBX-USED-WEIGHT-1M")
    async with _client(handler, limiter=main) as client:
        client.set_host_limiter("https://fapi.test", other)
        await client.get("/api/v3/x", {"a": 1})
        await client.get("https://fapi.test/fapi/v1/y")
    assert seen == ["https://api.test/api/v3/x?a=1", "https://fapi.test/fapi/v1/y"]
    assert main.last_used_weight == 7 and other.last_used_weight == 7


def test_should_retry_only_transient() -> None:
    assert should_retry(TransientError("x", "timeout"))
    assert not should_retry(ExchangeError("x"))
    assert not should_retry(ValueError("x"))
    policy = RetryPolicy(base_s=1.0, max_s=4.0)
    assert all(0 <= policy.backoff_s(n) <= min(4.0, 2**n) for n in range(6))
