"""Source registry: lazy native sources, the ccxt fallback, base-URL overrides."""

from __future__ import annotations

import pytest

from dccd_core.domain import ConfigError, UnknownExchange
from dccd_core.sources import registry
from dccd_core.sources.base import Endpoints
from dccd_core.sources.binance import BinanceSource
from dccd_core.sources.registry import (
    build_source,
    known_exchanges,
    resolve_endpoints,
    validate_origin,
)

DEFAULT = Endpoints("https://api.example.com", "wss://ws.example.com")


def test_known_exchanges_native_first_then_ccxt() -> None:
    names = known_exchanges()
    assert names[:7] == ["binance", "coinbase", "kraken", "bybit", "okx", "bitfinex", "bitmex"]
    assert "bitget" in names and len(names) > 50


def test_unknown_exchange_lists_the_known_ones() -> None:
    with pytest.raises(UnknownExchange, match=r"use a native source \(binance, coinbase"):
        build_source("nosuchexchange")
    with pytest.raises(UnknownExchange, match=r"'binanse' \(did you mean binance"):
        build_source("binanse")


async def test_builds_binance_with_limiter_and_check_payload() -> None:
    source = build_source("binance", rest_url="http://127.0.0.1:8080/")
    try:
        assert isinstance(source, BinanceSource)
        assert source.endpoints.rest_url == "http://127.0.0.1:8080"
        assert source.http.limiter.weight_per_minute == 6000
        assert source.http.limiter.usage_header == "X-MBX-USED-WEIGHT-1M"
        assert source.http.check_payload is BinanceSource.check_payload
    finally:
        await source.aclose()


def test_a_broken_native_module_only_breaks_its_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.NATIVE_SOURCES, "kraken", "dccd_core.sources.nope:KrakenSource")
    with pytest.raises(UnknownExchange, match="cannot be loaded"):
        registry.source_class("kraken")
    cls, native = registry.source_class("binance")
    assert cls is BinanceSource and native


def test_precedence_argument_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCCD_EXAMPLE_REST_URL", raising=False)
    monkeypatch.delenv("DCCD_EXAMPLE_WS_URL", raising=False)
    assert resolve_endpoints("example", DEFAULT) == DEFAULT
    monkeypatch.setenv("DCCD_EXAMPLE_REST_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("DCCD_EXAMPLE_WS_URL", "ws://127.0.0.1:9001")
    assert resolve_endpoints("example", DEFAULT) == Endpoints(
        "http://127.0.0.1:9000", "ws://127.0.0.1:9001"
    )
    assert resolve_endpoints("example", DEFAULT, rest_url="https://mirror.test").rest_url == (
        "https://mirror.test"
    )


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8080", "ftp://host", "http://host/api/v3", "http://host?x=1", "http://", "ws://h"],
)
def test_invalid_rest_origins(url: str) -> None:
    with pytest.raises(ConfigError, match="DCCD_BINANCE_REST_URL"):
        validate_origin(url, "binance", "rest")


def test_env_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCCD_BINANCE_REST_URL", "http://bad/path")
    with pytest.raises(ConfigError, match="no path"):
        build_source("binance")


async def test_other_ccxt_exchanges_use_the_ccxt_source() -> None:
    from dccd_core.sources.ccxt_source import CcxtSource
    async with build_source("bitget", rest_url="http://127.0.0.1:1") as source:
        assert isinstance(source, CcxtSource)
