"""The catalog: good catalogs expand into specs, bad ones fail at load with one clear error."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from dccd_core.domain import CatalogError, ConfigError, DatasetKey
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
        ("bad_invalid_date.yaml", ["datasets[0].start", "'2024-02-30' is not a valid date",
                                   "YYYY-MM-DD"]),
        ("bad_not_utf8.yaml", ["line 3", "not UTF-8", "0xe9", "symbols:",
                               "save the catalog as UTF-8"]),
        ("bad_duplicate_key.yaml", ["datasets[0].start: written twice (lines 8 and 9)",
                                    "exchanges.binance.pool_limit: written twice", "keep one"]),
        ("bad_rest_url.yaml", ["exchanges.binance.rest_url", "'ftp://api.binance.com'",
                               "http or https"]),
        ("bad_empty.yaml", ["datasets: the catalog lists no datasets", "add one"]),
        ("bad_month_span.yaml", ["datasets[0].spans[1]", "1M is one month", "use 1d or 1w"]),
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


NEW_BAD = [
    "bad_invalid_date.yaml",
    "bad_not_utf8.yaml",
    "bad_duplicate_key.yaml",
    "bad_rest_url.yaml",
    "bad_empty.yaml",
    "bad_month_span.yaml",
]


@pytest.mark.parametrize("name", NEW_BAD)
def test_dagster_load_raises_the_same_catalog_error(name: str) -> None:
    """``definitions.py`` (what Dagster loads) fails with the validate error, not a raw one."""
    from dccd_pipelines.definitions import build_definitions

    with pytest.raises(CatalogError) as loaded:
        build_definitions(path=CATALOGS / name)
    with pytest.raises(CatalogError) as validated:
        load_catalog(CATALOGS / name)
    assert loaded.value.problems == validated.value.problems
    assert all(line.startswith(f"{CATALOGS / name}: ") for line in loaded.value.problems)


def test_every_problem_is_one_line_naming_file_and_key() -> None:
    with pytest.raises(CatalogError) as info:
        load("bad_two_problems.yaml")
    file = CATALOGS / "bad_two_problems.yaml"
    assert [line.split(": ")[1] for line in info.value.problems] == [
        "datasets[0].exchange", "datasets[1].spans[0]"
    ]
    assert all(line.startswith(f"{file}: ") and "\n" not in line for line in info.value.problems)
    assert "did you mean binance" in info.value.problems[0]


@pytest.mark.parametrize("raw", [None, {}, {"datasets": []}, {"store": {"root": "./x"}}])
def test_a_catalog_without_datasets_is_an_error(raw: object) -> None:
    with pytest.raises(CatalogError, match="datasets: the catalog lists no datasets"):
        parse_catalog(raw, env={}, today=TODAY)


def test_a_duplicate_key_is_found_at_any_depth(tmp_path: Path) -> None:
    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(
        "datasets:\n"
        "  - exchange: binance\n"
        "    symbols: [BTC/USDT]\n"
        "    data_types: [book]\n"
        "    start: 2024-01-01\n"
        "    stream: [book]\n"
        "    book:\n"
        "      depth: 20\n"
        "      depth: 50\n"
        "datasets:\n"
        "  - exchange: kraken\n"
        "    symbols: [BTC/USD]\n"
        "    data_types: [trades]\n"
        "    start: 2024-01-01\n"
    )
    with pytest.raises(CatalogError) as info:
        load_catalog(catalog, env={}, today=TODAY)
    assert [p.split(": ")[1] for p in info.value.problems] == ["datasets[0].book.depth", "datasets"]
    assert "lines 8 and 9" in info.value.problems[0] and "lines 1 and 10" in info.value.problems[1]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    from dccd_core.catalog import read_yaml

    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(
        "x: &base {exchange: binance, symbols: [BTC/USDT], start: 2024-01-01}\n"
        "datasets:\n  - <<: *base\n    data_types: [trades]\n    start: 2024-02-01\n"
    )
    dataset = read_yaml(catalog)["datasets"][0]
    assert dataset["start"] == "2024-02-01" and dataset["exchange"] == "binance"


def test_dates_parse_like_before(tmp_path: Path) -> None:
    """Dates stay text in YAML now; every spelling that worked still gives the same day."""
    day = date(2024, 1, 5)
    for text in ["2024-01-05", "2024-1-5", "2024-01-05T00:00:00Z", "'2024-01-05'"]:
        catalog = tmp_path / "dccd.yaml"
        catalog.write_text(
            "datasets:\n  - {exchange: binance, symbols: [BTC/USDT], data_types: [trades], "
            f"start: {text}}}\n"
        )
        assert load_catalog(catalog, env={}, today=TODAY).datasets[0].start == day


def test_an_env_url_override_is_checked_too() -> None:
    with pytest.raises(CatalogError, match=r"DCCD_BINANCE_WS_URL: invalid ws URL 'https://x'"):
        load("good_minimal.yaml", DCCD_BINANCE_WS_URL="https://x")


def test_a_store_root_that_cannot_be_created_fails_at_load(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.raises(CatalogError) as info:
        load("good_minimal.yaml", DCCD_DATA_PATH=str(blocker / "lake"))
    [line] = info.value.problems
    assert "DCCD_DATA_PATH: the lake root" in line and "is a file" in line
    assert "choose another root (store.root or DCCD_DATA_PATH)" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
def test_a_read_only_store_root_fails_at_load(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    lake.chmod(0o500)
    try:
        catalog = tmp_path / "dccd.yaml"
        catalog.write_text(
            f"store: {{root: {lake}}}\n"
            "datasets:\n  - {exchange: binance, symbols: [BTC/USDT], data_types: [trades], "
            "start: 2024-01-01}\n"
        )
        with pytest.raises(CatalogError, match=r"store.root: the lake root .* is not writable"):
            load_catalog(catalog, env={}, today=TODAY)
    finally:
        lake.chmod(0o700)
