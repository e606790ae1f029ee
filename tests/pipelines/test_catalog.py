"""The catalog: good catalogs expand into specs, bad ones fail at load with one clear error."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from dccd_core.domain import ConfigError, DatasetKey
from dccd_pipelines.catalog import load_catalog, parse_catalog

CATALOGS = Path(__file__).parents[1] / "fixtures" / "catalogs"
TODAY = date(2024, 6, 1)


def load(name: str, **env: str):
    return load_catalog(CATALOGS / name, env=env, today=TODAY)


def test_minimal_catalog_expands_to_one_spec() -> None:
    catalog = load("good_minimal.yaml")
    assert [s.key for s in catalog.datasets] == [DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")]
    spec = catalog.datasets[0]
    assert spec.start == date(2024, 1, 1)
    assert spec.update_cron is None and not spec.stream
    assert spec.pool == "dccd_binance"
    assert catalog.store_root == Path("data").resolve()


def test_full_catalog_one_spec_per_exchange_symbol_type_span() -> None:
    catalog = load("good_full.yaml")
    keys = {"/".join(s.key.asset_key_path) for s in catalog.datasets}
    assert len(catalog) == 2 * (2 + 1 + 1) + 1
    assert "binance/ohlc/btc_usdt_1m" in keys and "binance/ohlc/eth_usdt_1h" in keys
    assert "binance/trades/btc_usdt" in keys and "binance/book/eth_usdt" in keys
    assert "kraken/trades/btc_usd" in keys
    book = catalog.spec(DatasetKey.of("binance", "ETH/USDT", "book"))
    assert book.book_depth == 20 and book.snapshot_interval_s == 10.0 and book.stream
    ohlc = catalog.spec(DatasetKey.of("binance", "BTC/USDT", "ohlc", "1h"))
    assert not ohlc.stream and ohlc.book_depth is None
    assert ohlc.update_cron == "*/15 * * * *"
    assert ohlc.rest_url == "http://127.0.0.1:9" and ohlc.exchange.pool_limit == 1
    assert catalog.store_root == Path("lake").resolve()


def test_env_overrides_store_root_and_endpoints(tmp_path: Path) -> None:
    catalog = load(
        "good_full.yaml",
        DCCD_DATA_PATH=str(tmp_path / "x"),
        DCCD_BINANCE_REST_URL="http://127.0.0.1:1234",
    )
    assert catalog.store_root == tmp_path / "x"
    spec = catalog.datasets[0]
    assert spec.rest_url == "http://127.0.0.1:1234"
    assert spec.ws_url == "ws://127.0.0.1:9"


def test_config_path_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCCD_CONFIG", str(CATALOGS / "good_minimal.yaml"))
    assert len(load_catalog(today=TODAY)) == 1


def test_example_catalog_at_project_root_is_valid() -> None:
    catalog = load_catalog(Path(__file__).parents[2] / "dccd.yaml")
    assert len(catalog) == 8
    trades = catalog.spec(DatasetKey.of("binance", "BTC/USDT", "trades"))
    assert trades.stream and trades.update_cron == "*/15 * * * *"


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("bad_unknown_exchange.yaml", ["datasets[0].exchange", "unknown exchange 'binanse'",
                                       "did you mean binance"]),
        ("bad_symbol.yaml", ["datasets[0].symbols[1]", "invalid symbol 'BTCUSDT'", "BASE/QUOTE"]),
        ("bad_span.yaml", ["datasets[0].spans[1]", "invalid span '7m'", "expected one of"]),
        ("bad_spans_without_ohlc.yaml", ["datasets[0].spans", "ohlc only"]),
        ("bad_future_start.yaml", ["datasets[0].start", "2999-01-01 is in the future"]),
        ("bad_duplicate.yaml", ["datasets[1]", "duplicate dataset binance BTC/USDT ohlc 1m",
                                "datasets[0]"]),
        ("bad_cron.yaml", ["datasets[0].update", "invalid cron", "*/15 * * * *"]),
        ("bad_stream_not_collected.yaml", ["datasets[0].stream[0]", "add trades to data_types"]),
        ("bad_typo_key.yaml", ["datasets[0].span", "unknown key"]),
        ("bad_data_type.yaml", ["datasets[0].data_types[1]", "unknown data type 'candles'"]),
        ("bad_yaml.yaml", ["invalid YAML", "line"]),
    ],
)
def test_bad_catalog_is_one_clear_config_error(name: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(name)
    message = str(info.value)
    assert str(CATALOGS / name) in message
    for fragment in fragments:
        assert fragment in message, message


def test_several_problems_are_reported_together() -> None:
    raw = {
        "datasets": [
            {"exchange": "nope", "symbols": ["BTC/USDT"], "data_types": ["trades"],
             "start": "2024-01-01"},
            {"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["ohlc"],
             "spans": ["9m"], "start": "2024-01-01"},
        ]
    }
    with pytest.raises(ConfigError, match="2 problems") as info:
        parse_catalog(raw, path="x.yaml", env={}, today=TODAY)
    assert "datasets[0].exchange" in str(info.value)
    assert "datasets[1].spans[0]" in str(info.value)


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DCCD_CONFIG"):
        load_catalog(tmp_path / "missing.yaml")


def test_missing_required_key_is_named() -> None:
    raw = {"datasets": [{"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["trades"]}]}
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.start: required key is missing"):
        parse_catalog(raw, env={}, today=TODAY)


def test_ccxt_exchange_is_known() -> None:
    raw = {"datasets": [{"exchange": "gate", "symbols": ["BTC/USDT"], "data_types": ["trades"],
                         "start": "2024-01-01"}]}
    assert len(parse_catalog(raw, env={}, today=TODAY)) == 1


def test_recent_only_rest_history_needs_a_stream() -> None:
    raw = {"datasets": [{"exchange": "bybit", "symbols": ["BTC/USDT"], "data_types": ["trades"],
                         "start": "2024-01-01"}]}
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.data_types\[0\]: bybit serves only"):
        parse_catalog(raw, env={}, today=TODAY)
    raw["datasets"][0]["stream"] = ["trades"]
    assert len(parse_catalog(raw, env={}, today=TODAY)) == 1
