"""The catalog's archive keys: ``archives: auto|off|only`` per dataset and
``exchanges.<name>.archive_url`` (``DCCD_<EXCHANGE>_ARCHIVE_URL`` overrides), checked
with one clear line each."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from dccd_core.domain import CatalogError, DatasetKey
from dccd_core.sources.archives.mode import ArchiveMode
from dccd_pipelines.catalog import parse_catalog

TODAY = date(2024, 6, 1)


def _catalog(tmp_path: Any, dataset: dict[str, Any], exchanges: Any = None, **env: str) -> Any:
    raw: dict[str, Any] = {"store": {"root": str(tmp_path)}, "datasets": [dataset]}
    if exchanges is not None:
        raw["exchanges"] = exchanges
    return parse_catalog(raw, env=env, today=TODAY)


def _ds(**extra: Any) -> dict[str, Any]:
    return {"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["ohlc"],
            "spans": ["1m"], "start": "2024-01-01", **extra}


def test_archives_default_auto_and_each_mode(tmp_path: Any) -> None:
    [spec] = _catalog(tmp_path, _ds()).datasets
    assert spec.archives is ArchiveMode.AUTO and spec.archive_url is None
    for text, mode in (("off", ArchiveMode.OFF), ("ONLY", ArchiveMode.ONLY), (False, "off")):
        [spec] = _catalog(tmp_path, _ds(archives=text)).datasets
        assert spec.archives == mode


def test_bad_mode_is_one_line_naming_the_choices(tmp_path: Any) -> None:
    with pytest.raises(CatalogError, match=r"datasets\[0\]\.archives.*auto.*off.*only"):
        _catalog(tmp_path, _ds(archives="sometimes"))


def test_archive_url_from_catalog_and_env_override(tmp_path: Any) -> None:
    exchanges = {"binance": {"archive_url": "http://127.0.0.1:7000"}}
    [spec] = _catalog(tmp_path, _ds(), exchanges).datasets
    assert spec.archive_url == "http://127.0.0.1:7000"
    [spec] = _catalog(
        tmp_path, _ds(), exchanges, DCCD_BINANCE_ARCHIVE_URL="http://127.0.0.1:7001"
    ).datasets
    assert spec.archive_url == "http://127.0.0.1:7001"


def test_bad_archive_url_names_the_key(tmp_path: Any) -> None:
    with pytest.raises(CatalogError, match=r"exchanges\.binance\.archive_url"):
        _catalog(tmp_path, _ds(), {"binance": {"archive_url": "ftp://data.binance.vision"}})
    with pytest.raises(CatalogError, match=r"DCCD_BINANCE_ARCHIVE_URL"):
        _catalog(tmp_path, _ds(), DCCD_BINANCE_ARCHIVE_URL="wss://x")


def test_only_without_archive_files_is_refused_with_the_fix(tmp_path: Any) -> None:
    kraken = {"exchange": "kraken", "symbols": ["BTC/USD"], "data_types": ["trades"],
              "start": "2024-01-01", "archives": "only"}
    with pytest.raises(
        CatalogError, match=r"datasets\[0\]\.archives: only, but kraken publishes no archive "
        r"files of spot trades.*use archives: auto"
    ):
        _catalog(tmp_path, kraken)
    # Binance publishes spot 1m klines: fine
    [spec] = _catalog(tmp_path, _ds(archives="only")).datasets
    assert spec.key == DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")


def test_bybit_trades_history_is_accepted_where_the_files_hold_it(tmp_path: Any) -> None:
    """Bybit's REST keeps only its latest trades; its perpetuals' daily files hold the
    history, so a trades dataset of perpetuals loads unless archives are off, and one
    with a spot symbol (no files) is still refused with the REST reason."""
    perp = {"exchange": "bybit", "symbols": ["BTC/USDT:USDT"], "data_types": ["trades"],
            "start": "2024-01-01"}
    [spec] = _catalog(tmp_path, perp).datasets
    assert spec.key == DatasetKey.of("bybit", "BTC/USDT:USDT", "trades")
    assert spec.archives is ArchiveMode.AUTO
    [only] = _catalog(tmp_path, {**perp, "archives": "only"}).datasets
    assert only.archives is ArchiveMode.ONLY
    with pytest.raises(CatalogError, match="only the most recent trades"):
        _catalog(tmp_path, {**perp, "archives": "off"})
    with pytest.raises(CatalogError, match="only the most recent trades"):
        _catalog(tmp_path, {**perp, "symbols": ["BTC/USDT:USDT", "BTC/USDT"]})
