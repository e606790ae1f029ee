"""build_archive_reader: which exchanges publish archives, and where the origin comes
from (argument > DCCD_<EXCHANGE>_ARCHIVE_URL > default), validated like REST."""

from __future__ import annotations

import pytest

from dccd_core.domain import ConfigError, DatasetKey, NoCapability
from dccd_core.sources.binance.archives import BinanceArchives
from dccd_core.sources.bitmex.archives import BitmexArchives
from dccd_core.sources.registry import build_archive_reader


async def test_origin_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCCD_BINANCE_ARCHIVE_URL", raising=False)
    default = build_archive_reader("binance")
    assert isinstance(default, BinanceArchives)
    assert default.origin == "https://data.binance.vision"
    monkeypatch.setenv("DCCD_BINANCE_ARCHIVE_URL", "http://127.0.0.1:9/")
    from_env = build_archive_reader("binance")
    argument = build_archive_reader("binance", archive_url="https://mirror.example:8443")
    assert from_env is not None and from_env.origin == "http://127.0.0.1:9"
    assert argument is not None and argument.origin == "https://mirror.example:8443"
    bitmex = build_archive_reader("BitMEX")
    assert isinstance(bitmex, BitmexArchives) and bitmex.origin == "https://public.bitmex.com"
    for reader in (default, from_env, argument, bitmex):
        await reader.aclose()


@pytest.mark.parametrize("url", ["ftp://x.example", "https://x.example/data", "x.example"])
def test_a_bad_archive_url_is_refused_with_the_fix(url: str) -> None:
    with pytest.raises(ConfigError, match=r"archive_url or DCCD_BINANCE_ARCHIVE_URL"):
        build_archive_reader("binance", archive_url=url)


def test_exchanges_without_archives_have_no_reader() -> None:
    assert build_archive_reader("kraken") is None
    assert build_archive_reader("coinbase") is None


async def test_a_series_not_published_is_refused_before_any_request() -> None:
    reader = build_archive_reader("bitmex")
    assert reader is not None
    with pytest.raises(NoCapability, match="publishes no archive files"):
        reader.plan_files(DatasetKey.of("bitmex", "BTC/USD:BTC", "ohlc", "1m"), 0, 1, 2)
    await reader.aclose()
