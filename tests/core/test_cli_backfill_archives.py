"""``dccd backfill --archives auto|off|only`` against the fake Binance REST and the fake
data.binance.vision host (DCCD_BINANCE_REST_URL / DCCD_BINANCE_ARCHIVE_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dccd_cli import cli
from dccd_core.domain import NS_PER_DAY, NS_PER_MS, DatasetKey, iso_datetime, now_ns, to_ns
from dccd_core.storage import Store
from tests.fakes.archives import FakeArchives
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.server import serve_in_thread

TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
MISSING = "BTCUSDT-aggTrades-2024-05-11.zip"
RANGE = ("--start", "2024-05-10", "--end", "2024-05-13")


def _no_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No catalog unless a test writes one: the project's ./dccd.yaml would otherwise
    decide the backfill's archives mode (``dccd_cli.archive_choice``)."""
    monkeypatch.delenv("DCCD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fakes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[FakeBinance, FakeArchives]]:
    market = MarketData(7, to_ns("2024-01-01") // NS_PER_MS, den=20_000)
    binance = FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)
    archives = FakeArchives(binance=binance, missing={MISSING})
    with serve_in_thread(binance.app) as rest, serve_in_thread(archives.app) as origin:
        monkeypatch.setenv("DCCD_BINANCE_REST_URL", rest)
        monkeypatch.setenv("DCCD_BINANCE_ARCHIVE_URL", origin)
        monkeypatch.setenv("DCCD_CACHE_DIR", str(tmp_path / "cache"))
        _no_catalog(monkeypatch, tmp_path)
        yield binance, archives


def _backfill(root: Path, *extra: str) -> tuple[int, str, str]:
    args = ["backfill", "binance", "BTC/USDT", "trades", *RANGE, "--root", str(root), *extra]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout, result.stderr


def test_auto_reads_files_falls_back_for_the_missing_day_and_says_so(
    fakes: tuple[FakeBinance, FakeArchives], tmp_path: Path
) -> None:
    binance, _ = fakes
    code, out, err = _backfill(tmp_path / "lake", "--progress-every", "0.05")
    assert code == 0, err
    assert "archive files 2/3" in out and "1 fallbacks" in out
    assert f"archive fallback: {MISSING}: missing" in err and "fetched over REST" in err
    assert "archive files" in err  # the progress line counts files
    stored = Store(tmp_path / "lake").read(TRADES)
    truth = binance.truth_trades(to_ns("2024-05-10"), to_ns("2024-05-13"))
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))
    assert binance.requests["aggTrades"] > 0  # the missing day only


def test_off_is_rest_only(fakes: tuple[FakeBinance, FakeArchives], tmp_path: Path) -> None:
    binance, archives = fakes
    code, out, err = _backfill(tmp_path / "lake", "--archives", "off")
    assert code == 0, err
    assert "archive files" not in out and not archives.requests
    assert Store(tmp_path / "lake").read(TRADES).height == binance.truth_trades(
        to_ns("2024-05-10"), to_ns("2024-05-13")
    ).height


def test_only_leaves_the_missing_day_uncovered_and_warns(
    fakes: tuple[FakeBinance, FakeArchives], tmp_path: Path
) -> None:
    binance, _ = fakes
    code, _out, err = _backfill(tmp_path / "lake", "--archives", "ONLY")
    assert code == 0, err
    assert binance.requests["aggTrades"] == 0
    assert (
        f"warning: {TRADES} NOT complete: 2024-05-11T00:00:00Z -> 2024-05-12T00:00:00Z "
        "left uncovered"
    ) in err
    holes = Store(tmp_path / "lake").holes(TRADES, to_ns("2024-05-10"), to_ns("2024-05-13"))
    assert holes == [(to_ns("2024-05-11"), to_ns("2024-05-12"))]


def test_a_bad_mode_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = _backfill(tmp_path / "lake", "--archives", "sometimes")
    assert code == 2 and "'sometimes' is not one of 'auto', 'off', 'only'" in err


def test_only_on_an_exchange_without_archives_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["backfill", "kraken", "BTC/USD", "trades", "--archives", "only",
         "--root", str(tmp_path / "lake")],
    )
    assert result.exit_code == 2
    assert "archives: only, but kraken publishes no archive files" in result.stderr


@pytest.fixture
def bybit_fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from tests.fakes.bybit import FakeBybit, make_app

    bybit = FakeBybit()
    archives = FakeArchives(bybit=bybit)
    with serve_in_thread(lambda: make_app(bybit)) as rest, serve_in_thread(
        archives.app
    ) as origin:
        monkeypatch.setenv("DCCD_BYBIT_REST_URL", rest)
        monkeypatch.setenv("DCCD_BYBIT_ARCHIVE_URL", origin)
        monkeypatch.setenv("DCCD_CACHE_DIR", str(tmp_path / "cache"))
        _no_catalog(monkeypatch, tmp_path)
        yield bybit


def _bybit(root: Path, *args: str) -> tuple[int, str, str]:
    argv = ["backfill", "bybit", "BTC/USDT:USDT", "trades", *args, "--root", str(root)]
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, result.stdout, result.stderr


def test_bybit_trade_days_come_from_the_files(bybit_fakes: Any, tmp_path: Path) -> None:
    """Bybit's REST keeps only its latest trades: past days are the daily files'."""
    key = DatasetKey.of("bybit", "BTC/USDT:USDT", "trades")
    start, end = to_ns("2024-02-29"), to_ns("2024-03-02")
    code, out, err = _bybit(tmp_path / "lake", "--start", "2024-02-29", "--end", "2024-03-02")
    assert code == 0, err
    assert "archive files 2/2" in out and "NOT complete" not in err
    stored = Store(tmp_path / "lake").read(key)
    truth = bybit_fakes.truth_trades(key.symbol, start, end)
    assert truth.height > 500
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))
    assert [p for p, _ in bybit_fakes.requests if "trade" in p] == []


def test_bybit_unpublished_days_are_named_not_fetched(bybit_fakes: Any, tmp_path: Path) -> None:
    today = now_ns() // NS_PER_DAY * NS_PER_DAY
    code, out, err = _bybit(tmp_path / "lake", "--start", iso_datetime(today - 2 * NS_PER_DAY))
    assert code == 0, err
    assert "archive files 1/1" in out
    assert f"NOT complete: {iso_datetime(today - NS_PER_DAY)} -> " in err
    assert "REST keeps no history this old" in err
    assert [p for p, _ in bybit_fakes.requests if "trade" in p] == []


def test_bybit_window_neither_can_serve_is_refused(bybit_fakes: Any, tmp_path: Path) -> None:
    code, _out, err = _bybit(tmp_path / "lake", "--start", iso_datetime(now_ns() - 3600 * 10**9))
    assert code != 0
    assert "can be served neither" in err and "stream" in err
    assert [p for p, _ in bybit_fakes.requests if "trade" in p] == []


def _catalog(tmp_path: Path, archives: str, archive_url: str | None = None) -> Path:
    exchange = f"exchanges:\n  binance:\n    archive_url: {archive_url}\n" if archive_url else ""
    path = tmp_path / "dccd.yaml"
    path.write_text(
        exchange
        + "datasets:\n"
        "  - exchange: binance\n"
        "    symbols: [BTC/USDT]\n"
        "    data_types: [trades]\n"
        "    start: 2024-05-01\n"
        f"    archives: {archives}\n"
    )
    return path


def test_without_the_flag_the_catalogs_archives_off_is_used(
    fakes: tuple[FakeBinance, FakeArchives], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog says ``archives: off`` for this dataset: no archive request at all,
    every row from REST, and the summary names the mode and the catalog it came from."""
    binance, archives = fakes
    catalog = _catalog(tmp_path, "off")
    monkeypatch.setenv("DCCD_CONFIG", str(catalog))
    code, out, err = _backfill(tmp_path / "lake")
    assert code == 0, err
    assert not archives.requests  # the fake archive host saw nothing
    assert f"archives off (catalog {catalog})" in out and "archive files" not in out
    stored = Store(tmp_path / "lake").read(TRADES)
    truth = binance.truth_trades(to_ns("2024-05-10"), to_ns("2024-05-13"))
    assert truth.height > 1000
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))


def test_an_explicit_flag_wins_over_the_catalog_and_its_archive_url_applies(
    fakes: tuple[FakeBinance, FakeArchives], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--archives auto`` beats the catalog's ``off``; the archive origin is the
    catalog's ``archive_url`` (the environment's is cleared), so the files are read."""
    binance, archives = fakes
    origin = os.environ["DCCD_BINANCE_ARCHIVE_URL"]
    monkeypatch.delenv("DCCD_BINANCE_ARCHIVE_URL")
    monkeypatch.setenv("DCCD_CONFIG", str(_catalog(tmp_path, "off", origin)))
    code, out, err = _backfill(tmp_path / "lake", "--archives", "auto")
    assert code == 0, err
    assert "archives auto (--archives)" in out and "archive files 2/3" in out
    assert any(path.endswith(".zip") for path in archives.requests)
    stored = Store(tmp_path / "lake").read(TRADES)
    truth = binance.truth_trades(to_ns("2024-05-10"), to_ns("2024-05-13"))
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))


def test_a_dataset_the_catalog_does_not_list_uses_auto(
    fakes: tuple[FakeBinance, FakeArchives], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, archives = fakes
    path = tmp_path / "other.yaml"
    path.write_text(
        "datasets:\n  - exchange: binance\n    symbols: [ETH/USDT]\n"
        "    data_types: [trades]\n    start: 2024-05-01\n    archives: off\n"
    )
    monkeypatch.setenv("DCCD_CONFIG", str(path))
    code, out, err = _backfill(tmp_path / "lake")
    assert code == 0, err
    assert "archives auto (default)" in out and archives.requests


def test_a_broken_catalog_is_said_when_the_mode_depends_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCCD_CONFIG", str(tmp_path / "missing.yaml"))
    code, _out, err = _backfill(tmp_path / "lake")
    assert code == 2
    assert "missing.yaml not found" in err and "pass --archives" in err
