"""The shared request budget (``SharedWeightLimiter``) against a real PostgreSQL: two
limiters on one bucket (two connections, as two processes would have) spend one budget;
a usage header or a 429 seen by one holds the other; a mistake in the configuration is
one clear error before any request."""

from __future__ import annotations

import asyncio
import time

import pytest

from dccd_core.domain import ConfigError
from dccd_core.transport import WeightLimiter
from dccd_core.transport.shared_limiter import (
    BUDGET_URL_ENV,
    EGRESS_ENV,
    SharedWeightLimiter,
    budget_limiter,
    redact,
)

HEADER = "X-MBX-USED-WEIGHT-1M"


def pair(
    url: str, bucket: str, weight: int = 60, window_s: float = 1.0
) -> list[SharedWeightLimiter]:
    return [
        SharedWeightLimiter(url, bucket, weight, usage_header=HEADER, window_s=window_s)
        for _ in range(2)
    ]


async def test_two_limiters_on_one_bucket_spend_one_budget(postgres_url: str) -> None:
    # 60 weight a second at safety 0.9: 54/s refill, a burst of 5.4
    limiters = pair(postgres_url, "binance@test")
    try:
        start = time.monotonic()

        async def spend(limiter: SharedWeightLimiter) -> None:
            for _ in range(20):
                await limiter.acquire(2)

        await asyncio.gather(*(spend(x) for x in limiters))
        elapsed = time.monotonic() - start
    finally:
        for limiter in limiters:
            await limiter.aclose()
    # 80 weight through one bucket: (80 - 5.4) / 54 = 1.38 s at least; two separate
    # buckets would have needed half of that
    assert elapsed >= 1.3
    assert elapsed < 3.0
    assert sum(x.takes for x in limiters) == 40


async def test_another_bucket_is_another_budget(postgres_url: str) -> None:
    a = SharedWeightLimiter(postgres_url, "binance@egress-1", 60, window_s=1.0)
    b = SharedWeightLimiter(postgres_url, "binance@egress-2", 60, window_s=1.0)
    try:
        start = time.monotonic()
        await asyncio.gather(*(x.acquire(5) for x in (a, b)))
        assert time.monotonic() - start < 0.5  # each within its own burst
    finally:
        await a.aclose()
        await b.aclose()


async def test_usage_header_near_the_limit_holds_every_process(postgres_url: str) -> None:
    a, b = pair(postgres_url, "binance@header", weight=1000, window_s=1.0)
    try:
        await a.acquire(1)
        a.observe({HEADER: "950"})  # >= 0.9 of 1000: wait for the window to roll over
        rollover = (int(time.time()) + 1) * 1.0
        await a.acquire(1)  # carries the block to the shared row
        await b.acquire(1)
        assert time.time() >= rollover
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_429_pause_holds_every_process(postgres_url: str) -> None:
    a, b = pair(postgres_url, "binance@429", weight=10_000, window_s=1.0)
    try:
        await a.acquire(1)
        start = time.monotonic()
        await a.pause(0.6)  # what HttpClient does with a 429's Retry-After
        await b.acquire(1)
        assert time.monotonic() - start >= 0.55
    finally:
        await a.aclose()
        await b.aclose()


def test_budget_limiter_is_per_process_without_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUDGET_URL_ENV, raising=False)
    limiter = budget_limiter("binance", 6000, usage_header=HEADER)
    assert type(limiter) is WeightLimiter


def test_budget_limiter_is_shared_with_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUDGET_URL_ENV, "postgresql://dccd:secret@db:5432/dccd")
    monkeypatch.setenv(EGRESS_ENV, "nat-a")
    limiter = budget_limiter("binance", 6000, usage_header=HEADER, scope="https://fapi.binance.com")
    assert isinstance(limiter, SharedWeightLimiter)
    assert limiter.bucket == "binance@nat-a https://fapi.binance.com"
    assert limiter.usage_header == HEADER


def test_a_url_that_is_not_postgresql_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUDGET_URL_ENV, "redis://cache:6379")
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        budget_limiter("binance", 6000)


async def test_an_unreachable_database_is_a_config_error_before_any_request(
    tmp_path: object,
) -> None:
    limiter = SharedWeightLimiter(
        "postgresql://dccd:secret@127.0.0.1:1/dccd", "binance@x", 6000, connect_timeout_s=1
    )
    with pytest.raises(ConfigError, match=r"cannot use the shared rate budget.*\*\*\*@") as err:
        await limiter.acquire(1)
    assert "secret" not in str(err.value)
    await limiter.aclose()


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://u:p%40ss@h/d") == "postgresql://u:***@h/d"
    assert redact("postgresql://h/d") == "postgresql://h/d"


async def test_a_429_one_client_gets_holds_another_clients_requests(postgres_url: str) -> None:
    """Two HttpClients (two workers) on one bucket: after the first is refused with
    Retry-After 1, the second sends nothing for that second either."""
    import httpx

    from dccd_core.transport import HttpClient

    sent: list[tuple[float, str]] = []
    refused: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        sent.append((now, request.url.path))
        if request.url.path == "/a" and not refused:
            refused.append(now)
            return httpx.Response(429, json={"code": -1003}, headers={"Retry-After": "1"})
        return httpx.Response(200, json=[])

    clients = [
        HttpClient(
            "binance", "http://fake", transport=httpx.MockTransport(handler),
            limiter=SharedWeightLimiter(postgres_url, "binance@http", 10**6),
        )
        for _ in range(2)
    ]
    try:
        await clients[0].get("/warm")
        await clients[1].get("/warm")
        first = asyncio.create_task(clients[0].get("/a"))
        while not refused:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # client 0 writes the pause to the row
        await clients[1].get("/b")
        await first
    finally:
        for client in clients:
            await client.aclose()
    (b_at,) = [t for t, path in sent if path == "/b"]
    assert b_at - refused[0] >= 0.9
    assert all(c.limiter is not None and c.limiter._conn is None for c in clients)
