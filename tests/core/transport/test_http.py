"""HttpClient: retries, the shared 429/418 pause gate, error mapping (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from dccd_core.domain import ExchangeError, RateLimited, RetryExhausted, UnknownSymbol
from dccd_core.sources.binance.parse import check_payload
from dccd_core.transport import HttpClient, RetryPolicy, WeightLimiter, should_retry
from dccd_core.transport.errors import RATE_LIMIT, TRANSIENT, ErrorTable, error_entries
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


# -- per-exchange tables of documented error codes (issue #10) ----------------------------

#: what a good reply looks like to each source's ``check_payload``
_GOOD: dict[str, object] = {
    "binance": [],
    "bybit": {"retCode": 0, "retMsg": "OK", "result": {}, "retExtInfo": {}, "time": 1},
    "okx": {"code": "0", "msg": "", "data": []},
    "kraken": {"error": [], "result": {}},
    "coinbase": [],
    "bitfinex": [],
    "bitmex": [],
}
_NOW = {"Retry-After": "0"}  # rate-limit replies here ask for no wait, to stay fast

#: (exchange, HTTP status, the exchange's documented error body, headers, class)
_DOCUMENTED: list[tuple[str, int, object, dict[str, str], str]] = [
    ("binance", 500, {"code": -1000, "msg": "An unknown error occurred while processing the request."}, {}, "transient"),  # noqa: E501
    ("binance", 503, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}, {}, "transient"),  # noqa: E501
    ("binance", 503, {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown."}, {}, "transient"),  # noqa: E501
    ("binance", 429, {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."}, _NOW, "rate_limit"),  # noqa: E501
    ("binance", 200, {"code": -1015, "msg": "Too many new orders."}, _NOW, "rate_limit"),
    ("binance", 400, {"code": -1121, "msg": "Invalid symbol."}, {}, "permanent"),
    ("binance", 500, {"code": -9999, "msg": "not in the table"}, {}, "transient"),
    ("bybit", 200, {"retCode": 10016, "retMsg": "Server error.", "result": {}}, {}, "transient"),
    ("bybit", 200, {"retCode": 10000, "retMsg": "Server Timeout", "result": {}}, {}, "transient"),
    ("bybit", 200, {"retCode": 10006, "retMsg": "Too many visits!", "result": {}}, _NOW, "rate_limit"),  # noqa: E501
    ("bybit", 200, {"retCode": 10018, "retMsg": "Exceeded the IP Rate Limit.", "result": {}}, _NOW, "rate_limit"),  # noqa: E501
    ("bybit", 200, {"retCode": 10001, "retMsg": "Not supported symbols", "result": {}}, {}, "permanent"),  # noqa: E501
    ("okx", 503, {"code": "50001", "msg": "Service temporarily unavailable. Please try again later.", "data": []}, {}, "transient"),  # noqa: E501
    ("okx", 400, {"code": "50004", "msg": "Endpoint request timeout (does not mean that the request was successful or failed, please check the request result).", "data": []}, {}, "transient"),  # noqa: E501
    ("okx", 200, {"code": "50013", "msg": "Systems are busy. Please try again later.", "data": []}, {}, "transient"),  # noqa: E501
    ("okx", 429, {"code": "50011", "msg": "Rate limit reached. Please refer to API documentation and throttle requests accordingly.", "data": []}, _NOW, "rate_limit"),  # noqa: E501
    ("okx", 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}, {}, "permanent"),  # noqa: E501
    ("kraken", 200, {"error": ["EService:Unavailable"], "result": {}}, {}, "transient"),
    ("kraken", 200, {"error": ["EService:Busy"], "result": {}}, {}, "transient"),
    ("kraken", 200, {"error": ["EAPI:Rate limit exceeded"], "result": {}}, _NOW, "rate_limit"),
    ("kraken", 200, {"error": ["EQuery:Unknown asset pair"], "result": {}}, {}, "permanent"),
    ("coinbase", 500, {"message": "Internal server error"}, {}, "transient"),
    ("coinbase", 502, "<html>502 Bad Gateway</html>", {}, "transient"),
    ("coinbase", 429, {"message": "Public rate limit exceeded"}, _NOW, "rate_limit"),
    ("coinbase", 404, {"message": "NotFound"}, {}, "permanent"),
    ("bitfinex", 500, ["error", 20060, "maintenance"], {}, "transient"),
    ("bitfinex", 500, ["error", 11010, "ratelimit: error"], _NOW, "rate_limit"),
    ("bitfinex", 429, {"error": "ERR_RATE_LIMIT"}, _NOW, "rate_limit"),
    ("bitfinex", 500, ["error", 10020, "limit: invalid"], {}, "permanent"),
    ("bitmex", 503, {"error": {"message": "The system is currently overloaded. Please try again later.", "name": "HTTPError"}}, {}, "transient"),  # noqa: E501
    ("bitmex", 429, {"error": {"message": "Rate limit exceeded, retry in 1 seconds.", "name": "RateLimitError"}}, _NOW, "rate_limit"),  # noqa: E501
    ("bitmex", 400, {"error": {"message": "Invalid symbol", "name": "HTTPError"}}, {}, "permanent"),
]  # fmt: skip


def _said(body: object) -> str:
    """The exchange's own words in a documented error body, read by hand."""
    if isinstance(body, list):
        return str(body[2])
    assert isinstance(body, dict)
    error = body.get("error")
    if isinstance(error, list):
        return str(error[0])
    if isinstance(error, dict):
        return str(error["message"])
    return str(body.get("msg") or body.get("retMsg") or body.get("message") or error)


@pytest.mark.parametrize(
    ("exchange", "status", "body", "headers", "fault"),
    _DOCUMENTED,
    ids=[f"{e}-{s}-{str(b)[:40]}" for e, s, b, _, _ in _DOCUMENTED],
)
async def test_documented_error_bodies_are_classified_by_the_exchange_table(
    exchange: str, status: int, body: object, headers: dict[str, str], fault: str
) -> None:
    """Through the registry's wiring (``build_source``): transient -> one retry then the
    data; rate limit -> one pause of the shared gate then the data; permanent -> a
    dccd error at once, carrying the exchange's own words."""
    from dccd_core.sources.registry import build_source

    replies = iter([(status, body, headers), (200, _GOOD[exchange], {})])
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        code, data, extra = next(replies)
        content = data.encode() if isinstance(data, str) else orjson.dumps(data)
        return _json(content, code, extra)

    transport = httpx.MockTransport(handler)
    source = build_source(exchange, rest_url="https://api.test", transport=transport)
    http = source.http  # type: ignore[attr-defined]
    http.retry, http.limiter = FAST, None
    try:
        if fault == "permanent":
            with pytest.raises((ExchangeError, UnknownSymbol)) as caught:
                await http.get("/x")
            assert _said(body) in str(caught.value)
            assert calls == 1
        else:
            response = await http.get("/x")
            assert response.data == _GOOD[exchange]
            assert calls == 2
            assert http.stats.retries == (fault == "transient")
            assert http.stats.rate_limit_pauses == (fault == "rate_limit")
    finally:
        await source.aclose()


async def test_a_rate_limit_body_without_retry_after_pauses_for_the_tables_time() -> None:
    table = ErrorTable.of({"50011": RATE_LIMIT}, rate_limit_pause_s=0.2)
    replies = iter([b'{"code": "50011", "msg": "Too Many Requests"}', b"[]"])
    async with _client(lambda r: _json(next(replies)), errors=table) as client:
        started = time.monotonic()
        assert (await client.get("/x")).data == []
    assert time.monotonic() - started >= 0.19
    assert client.stats.rate_limit_pauses == 1 and 0.19 <= client.stats.pause_s <= 0.25


async def test_table_faults_that_persist_end_with_the_exchanges_words() -> None:
    table = ErrorTable.of({"-1001": TRANSIENT, "-1003": RATE_LIMIT})
    busy = b'{"code": -1001, "msg": "Internal error; unable to process your request."}'
    async with _client(lambda r: _json(busy, 503), errors=table) as client:
        with pytest.raises(RetryExhausted, match=r"failed 4 times .*Internal error; unable"):
            await client.get("/x")
    limited = b'{"code": -1003, "msg": "Too many requests queued."}'
    policy = RetryPolicy(attempts=4, base_s=0.001, max_s=0.01, rate_limit_attempts=2)
    reply = _json(limited, 200, {"Retry-After": "0"})
    async with _client(lambda r: reply, retry=policy, errors=table) as client:
        with pytest.raises(RateLimited, match=r"HTTP 200, Too many requests queued"):
            await client.get("/x")


def test_error_entries_read_every_exchange_envelope() -> None:
    assert error_entries({"code": -1121, "msg": "Invalid symbol."}) == [
        ("-1121", "Invalid symbol. (code -1121)")
    ]
    assert error_entries({"code": "0", "msg": "", "data": []}) == []
    assert error_entries({"retCode": 0, "retMsg": "OK"}) == []
    assert error_entries({"error": ["WGeneral:Warning", "EService:Busy"]}) == [
        ("EService:Busy", "EService:Busy")
    ]
    assert error_entries(["error", 10020, "limit: invalid"]) == [
        ("10020", "limit: invalid (code 10020)")
    ]
    assert error_entries([[1, 2, 3]]) == []
    assert ErrorTable.of({"EGeneral:Internal error": TRANSIENT}).classify(
        {"error": ["EGeneral:Internal error:shard 3"]}
    ) == (TRANSIENT, "EGeneral:Internal error:shard 3")
