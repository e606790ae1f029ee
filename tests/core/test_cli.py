"""The dccd command: outputs, and one-line errors with exit code 2 for user mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from dccd_cli import cli
from dccd_core import inventory, read
from dccd_core.domain import ConfigError, UnknownDataset, UnknownExchange
from dccd_core.storage import Store
from dccd_core.storage.layout import period_path

from .storage.helpers import OHLC_1M, TRADES, ns, ohlc, trades

MIN = 60 * 10**9
DCCD = Path(sys.executable).with_name("dccd")
CATALOGS = Path(__file__).parents[1] / "fixtures" / "catalogs"


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    store = Store(tmp_path)
    store.write(OHLC_1M, ohlc(ns("2024-02-29T23:58") + np.arange(4) * MIN, 3.0))
    store.write(TRADES, trades(["1", "2"], [ns("2024-03-01T10:00"), ns("2024-03-01T11:00")]))
    store.record_coverage(OHLC_1M, ns("2024-02-29T23:58"), ns("2024-03-01T00:02"))
    store.record_coverage(OHLC_1M, ns("2024-03-01T01:00"), ns("2024-03-01T02:00"))
    return tmp_path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_public_read_and_inventory(lake: Path) -> None:
    frame = read("binance", "btc/usdt", "ohlc", span="1m", start="2024-03-01", root=lake)
    assert frame["ts"].to_list() == [ns("2024-03-01"), ns("2024-03-01") + MIN]
    assert read("binance", "BTC/USDT", "trades", end="2024-03-01T10:30", root=lake).height == 1
    assert {i.key for i in inventory(lake)} == {OHLC_1M, TRADES}
    with pytest.raises(ConfigError, match="before start"):
        read("binance", "BTC/USDT", "trades", start="2024-03-02", end="2024-03-01", root=lake)


def test_read_table_csv_parquet(lake: Path, tmp_path: Path) -> None:
    code, out, _ = _run("read", "binance", "BTC/USDT", "ohlc", "--span", "1m", "--root", str(lake))
    assert code == 0 and "4 rows" in out and "close" in out
    code, out, _ = _run(
        "read",
        "binance",
        "BTC/USDT",
        "ohlc",
        "--span",
        "1m",
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-01T00:01",
        "--format",
        "csv",
        "--root",
        str(lake),
    )
    assert code == 0
    assert out.splitlines() == [
        "ts,open,high,low,close,volume,quote_volume,trades",
        f"{ns('2024-03-01')},3.0,3.0,3.0,3.0,1.0,3.0,2",
    ]
    target = tmp_path / "out.parquet"
    code, _, err = _run(
        "read",
        "binance",
        "BTC/USDT",
        "trades",
        "--format",
        "parquet",
        "-o",
        str(target),
        "--root",
        str(lake),
    )
    assert code == 0 and "wrote 2 rows" in err
    assert pl.read_parquet(target)["trade_id"].to_list() == ["1", "2"]


def test_inventory_and_gaps(lake: Path) -> None:
    code, out, _ = _run("inventory", "--root", str(lake))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["exchange", "symbol", "type", "span"]
    assert any("ohlc" in line and "1m" in line and "2024-02-29T23:58:00Z" in line for line in lines)
    gaps = ("gaps", "binance", "BTC/USDT", "ohlc", "--span", "1m", "--root", str(lake))
    code, out, _ = _run(*gaps, "--end", "2024-03-01T03:00")
    assert code == 0
    assert "2 hole(s)" in out
    assert "2024-03-01T00:02:00Z  ->  2024-03-01T01:00:00Z  (58m)" in out
    assert "2024-03-01T02:00:00Z  ->  2024-03-01T03:00:00Z  (1h)" in out
    code, out, _ = _run(*gaps, "--start", "2024-03-01T01:00", "--end", "2024-03-01T02:00")
    assert code == 0 and "no holes" in out
    assert _run("inventory", "--root", str(lake / "empty"))[1].startswith("no datasets")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["read", "binance", "BTC/USDT", "candles"], "unknown data type 'candles'"),
        (["read", "binance", "BTCUSDT", "trades"], "invalid symbol 'BTCUSDT'"),
        (["read", "binance", "BTC/USDT", "ohlc", "--span", "7m"], "invalid span '7m'"),
        (["read", "binance", "BTC/USDT", "ohlc"], "ohlc needs a span"),
        (["read", "../x", "BTC/USDT", "trades"], "invalid exchange id"),
        (
            [
                "read",
                "binance",
                "BTC/USDT",
                "trades",
                "--start",
                "2024-03-02",
                "--end",
                "2024-03-01",
            ],
            "is before start",
        ),
        (["read", "binance", "BTC/USDT", "trades", "--start", "soon"], "invalid time 'soon'"),
        (["read", "binance", "BTC/USDT", "trades", "--format", "parquet"], "give a file with -o"),
        (["read", "binance", "BTC/USDT", "trades", "--format", "xml"], "Invalid value"),
        (["read", "binance"], "Missing argument"),
        (["gaps", "binance", "BTC/USDT", "book"], "nothing recorded"),
        (["nonsense"], "No such command"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(lake: Path, args: list[str], message: str) -> None:
    before = _snapshot(lake)
    code, out, err = _run(*args, "--root", str(lake)) if args[0] != "nonsense" else _run(*args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""
    assert _snapshot(lake) == before


def test_corrupt_file_is_a_one_line_error(lake: Path) -> None:
    bad = period_path(lake, OHLC_1M, "2024-03")
    bad.write_bytes(bad.read_bytes()[:40])
    code, _, err = _run("read", "binance", "BTC/USDT", "ohlc", "--span", "1m", "--root", str(lake))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(bad) in err and "re-run the backfill" in err
    assert _run("inventory", "--root", str(lake))[0] == 2


def test_validate_reports_the_catalog(tmp_path: Path) -> None:
    code, _, err = _run("validate", str(tmp_path / "missing.yaml"))
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(
        "store: {root: ./data}\n"
        "datasets:\n"
        "  - exchange: binance\n"
        "    symbols: [BTC/USDT]\n"
        "    data_types: [trades]\n"
        "    start: 2024-01-01\n"
    )
    pytest.importorskip("dccd_pipelines.catalog")
    code, out, err = _run("validate", str(catalog))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "ok: 1 datasets",
        "  binance BTC/USDT trades: archives auto from https://data.binance.vision: "
        "monthly+daily trades files, sha256 published",
    ]


def test_validate_says_what_backs_each_dataset(tmp_path: Path) -> None:
    """Per dataset: the archive mode, origin and files, or why REST alone serves it."""
    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(
        "store: {root: ./data}\n"
        "exchanges:\n"
        "  bitmex: {rest_url: 'http://127.0.0.1:9'}\n"
        "  bybit: {archive_url: 'http://127.0.0.1:8'}\n"
        "datasets:\n"
        "  - {exchange: binance, symbols: [BTC/USDT], data_types: [ohlc, book], spans: [1h],\n"
        "     start: 2024-01-01, archives: only}\n"
        "  - {exchange: bybit, symbols: [BTC/USDT:USDT, BTC/USDT], data_types: [ohlc],\n"
        "     spans: [1h], start: 2024-01-01}\n"
        "  - {exchange: bybit, symbols: [BTC/USDT:USDT], data_types: [trades],\n"
        "     start: 2024-01-01}\n"
        "  - {exchange: bitmex, symbols: [BTC/USD:BTC], data_types: [trades],\n"
        "     start: 2024-01-01}\n"
        "  - {exchange: kraken, symbols: [BTC/USD], data_types: [trades],\n"
        "     start: 2024-01-01, archives: off}\n"
    )
    pytest.importorskip("dccd_pipelines.catalog")
    code, out, err = _run("validate", str(catalog))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "ok: 7 datasets",
        "  binance BTC/USDT ohlc 1h: archives only from https://data.binance.vision: "
        "monthly+daily ohlc files, sha256 published",
        "  binance BTC/USDT book: no history to fetch (archives not used)",
        "  bybit BTC/USDT:USDT ohlc 1h: archives auto: bybit publishes no files of linear "
        "ohlc 1h (REST only)",
        "  bybit BTC/USDT ohlc 1h: archives auto: bybit publishes no files of spot ohlc 1h "
        "(REST only)",
        "  bybit BTC/USDT:USDT trades: archives auto from http://127.0.0.1:8: daily trades "
        "files, no published checksum",
        "  bitmex BTC/USD:BTC trades: archives auto: not used, the REST origin is overridden "
        "and no archive_url is set (REST only; set exchanges.bitmex.archive_url)",
        "  kraken BTC/USD trades: archives off (REST only)",
    ]


def test_real_subprocess(lake: Path) -> None:
    ok = subprocess.run(
        [
            str(DCCD),
            "read",
            "binance",
            "BTC/USDT",
            "trades",
            "--format",
            "csv",
            "--root",
            str(lake),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and ok.stdout.count("\n") == 3
    bad = subprocess.run(
        [str(DCCD), "read", "binance", "BTC/USDT", "ohlc", "--span", "1x", "--root", str(lake)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: invalid span '1x': expected one of 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w"
    ]
    assert bad.stdout == "" and "Traceback" not in bad.stderr


# --- issue 10: one clear answer for every mistake ---------------------------------------


def test_read_an_unknown_exchange_suggests_the_close_ones(lake: Path) -> None:
    args = ["read", "binanse", "BTC/USDT", "ohlc", "--span", "1m", "--root", str(lake)]
    code, out, err = _run(*args)
    assert (code, out) == (2, "")
    assert err.startswith("error: unknown exchange 'binanse' (did you mean binance")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(UnknownExchange, match="did you mean binance"):
        read("binanse", "BTC/USDT", "ohlc", span="1m", root=lake)


def test_read_a_dataset_the_lake_lacks_names_the_root(lake: Path) -> None:
    code, out, err = _run("read", "binance", "ETH/USDT", "trades", "--root", str(lake))
    assert (code, out) == (2, "")
    assert err.startswith("error: binance ETH/USDT trades is not in the lake at ")
    assert str(lake) in err and "(it holds binance BTC/USDT trades)" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(UnknownDataset, match=f"not in the lake at {lake}"):
        read("binance", "BTC/USDT", "ohlc", span="1h", root=lake)
    # a ccxt exchange is known: the lake, not the name, is what lacks it
    code, _, err = _run("read", "gate", "BTC/USDT", "trades", "--root", str(lake))
    assert code == 2 and "gate BTC/USDT trades is not in the lake" in err


def test_a_fetched_but_empty_range_is_zero_rows_not_an_error(tmp_path: Path) -> None:
    Store(tmp_path).record_coverage(TRADES, ns("2024-03-01"), ns("2024-03-02"))
    code, out, err = _run("read", "binance", "BTC/USDT", "trades", "--root", str(tmp_path))
    assert (code, err) == (0, "") and out.startswith(f"{TRADES}: 0 rows")
    assert read("binance", "BTC/USDT", "trades", root=tmp_path).height == 0


@pytest.mark.parametrize("command", ["read", "gaps"])
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--start", "99999999999999999999"),
        ("--start", "-99999999999999999999"),
        ("--end", "999999999999999999999"),
        ("--start", "9999-12-31"),
        ("--end", "2262-04-12"),
    ],
)
def test_a_time_out_of_range_is_one_line(lake: Path, command: str, option: str, value: str) -> None:
    args = [command, "binance", "BTC/USDT", "ohlc", "--span", "1m", option, value]
    code, out, err = _run(*args, "--root", str(lake))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: Invalid value for '{option}': time ") and "out of range" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_span_1M_is_a_month_in_the_cli(lake: Path) -> None:
    code, _, err = _run("read", "binance", "BTC/USDT", "ohlc", "--span", "1M", "--root", str(lake))
    assert code == 2 and "1M is one month" in err and "use 1d or 1w" in err


def test_validate_lists_every_problem_one_line_each() -> None:
    file = CATALOGS / "bad_two_problems.yaml"
    code, out, err = _run("validate", str(file))
    assert (code, out) == (2, "")
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"error: {file}: datasets[0].exchange: unknown exchange 'binanse'")
    assert lines[1].startswith(f"error: {file}: datasets[1].spans[0]: invalid span '9m'")


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("bad_invalid_date.yaml", "datasets[0].start: '2024-02-30' is not a valid date"),
        ("bad_not_utf8.yaml", "line 3: not UTF-8 text"),
        ("bad_duplicate_key.yaml", "datasets[0].start: written twice"),
        ("bad_rest_url.yaml", "exchanges.binance.rest_url: invalid rest URL 'ftp://"),
        ("bad_empty.yaml", "datasets: the catalog lists no datasets"),
        ("bad_month_span.yaml", "datasets[0].spans[1]: invalid span '1M': 1M is one month"),
    ],
)
def test_validate_names_file_key_and_fix(name: str, fragment: str) -> None:
    code, out, err = _run("validate", str(CATALOGS / name))
    assert (code, out) == (2, "")
    lines = err.strip().splitlines()
    assert all(line.startswith(f"error: {CATALOGS / name}: ") for line in lines), err
    assert any(fragment in line for line in lines), err


def test_validate_an_unwritable_store_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(
        f"store: {{root: {blocker / 'lake'}}}\n"
        "datasets:\n  - {exchange: binance, symbols: [BTC/USDT], data_types: [trades], "
        "start: 2024-01-01}\n"
    )
    code, out, err = _run("validate", str(catalog))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {catalog}: store.root: the lake root {blocker / 'lake'}")
    assert len(err.strip().splitlines()) == 1
