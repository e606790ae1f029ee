"""Issue 15's verbs against the fake Binance: ``dccd symbols``, ``dccd status``,
``dccd backfill`` (end to end in a subprocess, Ctrl-C mid-run and a resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dccd_cli import cli
from dccd_core import symbols
from dccd_core.domain import NS_PER_MS, DatasetKey, Span, iso_datetime, now_ns, to_ns
from dccd_core.storage import Store
from tests.fakes.binance import FakeBinance
from tests.fakes.server import FaultInjector, serve_in_thread, with_faults

DCCD = Path(sys.executable).with_name("dccd")
LISTING_MS = to_ns("2024-01-01") // NS_PER_MS
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
OHLC_1M = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
ETH_1H = DatasetKey.of("binance", "ETH/USDT", "ohlc", "1h")


def _fake() -> FakeBinance:
    return FakeBinance.default(listing_ms=LISTING_MS, weight_limit=10**9)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeBinance]:
    exchange = _fake()
    with serve_in_thread(exchange.app) as url:
        monkeypatch.setenv("DCCD_BINANCE_REST_URL", url)
        monkeypatch.setenv("DCCD_CACHE_DIR", str(tmp_path / "cache"))
        yield exchange


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- symbols -----------------------------------------------------------------------------


def test_symbols_quote_usdt_table_and_json(fake: FakeBinance) -> None:
    code, out, err = _run("symbols", "binance", "--quote", "USDT")
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0].split() == ["symbol", "type", "base", "quote", "settle"]
    listed = [line.split()[:2] for line in lines[1:-1]]
    # the fake lists BTCUSDT and ETHUSDT spot and the BTCUSDT perpetual
    assert listed == [["BTC/USDT", "spot"], ["BTC/USDT:USDT", "linear"], ["ETH/USDT", "spot"]]
    assert lines[-1].startswith("3 markets (from binance, fetched ")
    asked = fake.requests["exchangeInfo"]
    assert asked == 2  # spot and futures exchangeInfo

    code, out, err = _run("symbols", "binance", "--type", "linear", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["from_cache"] is True  # fetched a moment ago: served from the cache
    assert [s["symbol"] for s in data["symbols"]] == ["BTC/USDT:USDT"]
    assert fake.requests["exchangeInfo"] == asked
    assert [str(s) for s in symbols("binance", quote="usdt", type="spot").symbols] == [
        "BTC/USDT",
        "ETH/USDT",
    ]


def test_symbols_offline_with_a_cache_warns_and_shows_it(
    fake: FakeBinance, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run("symbols", "binance")[0] == 0  # fills the cache
    monkeypatch.setenv("DCCD_BINANCE_REST_URL", DEAD)
    code, out, err = _run("symbols", "binance", "--quote", "USDT", "--refresh")
    assert code == 0, err
    warning = err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: cannot reach binance ("), err
    assert "; cached list from 20" in warning[0]
    assert "BTC/USDT:USDT" in out and "3 markets (from cache" in out


def test_symbols_offline_without_a_cache_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DCCD_BINANCE_REST_URL", DEAD)
    monkeypatch.setenv("DCCD_CACHE_DIR", str(tmp_path / "empty"))
    code, out, err = _run("symbols", "binance")
    assert (code, out) == (2, "")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach binance ("), err
    assert "no cached list" in lines[0]


# -- status ------------------------------------------------------------------------------


def _catalog(tmp_path: Path, lake: Path) -> Path:
    path = tmp_path / "dccd.yaml"
    path.write_text(
        f"store:\n  root: {lake}\n"
        "datasets:\n"
        "  - exchange: binance\n"
        "    symbols: [BTC/USDT]\n"
        "    data_types: [ohlc]\n"
        "    spans: [1m]\n"
        "    start: 2024-01-01\n"
        "  - exchange: binance\n"
        "    symbols: [ETH/USDT]\n"
        "    data_types: [ohlc]\n"
        "    spans: [1h]\n"
        "    start: 2024-01-01\n",
        encoding="utf-8",
    )
    return path


def _stored(store: Store, fake: FakeBinance, key: DatasetKey, start: int, end: int) -> None:
    assert key.span is not None
    native = key.symbol.base + key.symbol.quote
    rows = fake.truth_candles(start, end, key.span.label, symbol=native)
    store.write(key, rows)
    store.record_coverage(key, start, end)


def test_status_one_fresh_one_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    fake, lake = _fake(), tmp_path / "lake"
    store = Store(lake)
    now = now_ns()
    fresh_end = Span.parse("1m").floor(now)
    _stored(store, fake, OHLC_1M, fresh_end - 8 * 86_400 * 10**9, fresh_end)  # > --days 7
    stale_end = Span.parse("1h").floor(now) - 2 * 86_400 * 10**9
    _stored(store, fake, ETH_1H, stale_end - 86_400 * 10**9, stale_end)
    catalog = _catalog(tmp_path, lake)

    code, out, err = _run("status", "--catalog", str(catalog), "--stale-after", "2h")
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[0].split() == [
        "exchange",
        "symbol",
        "type",
        "span",
        "state",
        "last",
        "age",
        "holes",
        "missing",
        "stream",
    ]
    rows = {tuple(line.split()[:4]): line.split()[4:] for line in lines[1:3]}
    fresh, stale = (
        rows[("binance", "BTC/USDT", "ohlc", "1m")],
        rows[("binance", "ETH/USDT", "ohlc", "1h")],
    )
    assert fresh[0] == "fresh" and fresh[3:] == ["0", "-", "-"], lines
    assert stale[0] == "stale" and stale[1].startswith("20") and stale[3] == "2", (
        lines
    )  # before, after
    assert lines[-1].startswith("1 fresh, 1 stale, 0 missing (stale after 2h")

    code, out, _ = _run("status", "--catalog", str(catalog), "--format", "json", "--days", "1")
    assert code == 1
    data = json.loads(out)
    by_name = {d["dataset"]: d for d in data["datasets"]}
    fresh, stale = by_name[str(OHLC_1M)], by_name[str(ETH_1H)]
    assert fresh["state"] == "fresh" and fresh["age_s"] < 3_600
    assert fresh["holes"] == 0  # the fake's own 1m holes are fetched ranges, not holes
    assert stale["state"] == "stale" and stale["age_s"] >= 2 * 86_400 - 3_600
    assert stale["holes"] == 1  # the last day: never fetched
    assert data["healthy"] is False and fresh["stream"] == "-"

    # stale after 3 days: both fresh, exit 0
    code, out, _ = _run("status", "--catalog", str(catalog), "--stale-after", "3d")
    assert code == 0, out
    assert out.splitlines()[-1].startswith("2 fresh, 0 stale, 0 missing")


def test_status_missing_dataset_and_usage_errors(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, tmp_path / "empty_lake")
    code, out, _ = _run("status", "--catalog", str(catalog), "--format", "json")
    assert code == 1
    states = [d["state"] for d in json.loads(out)["datasets"]]
    assert states == ["missing", "missing"]  # nothing stored: not "0 rows", not fresh
    code, out, err = _run("status", "--catalog", str(catalog), "--stale-after", "soon")
    assert code == 2 and err.startswith("error: invalid duration 'soon'"), err
    code, out, err = _run("status", "--catalog", str(tmp_path / "nope.yaml"))
    assert code == 2 and err.startswith("error: catalog ") and "not found" in err, err


# -- backfill ----------------------------------------------------------------------------


def _env(origin: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DCCD_BINANCE_REST_URL=origin,
        DCCD_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONPATH=str(Path(__file__).parents[2]),
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_for(proc: subprocess.Popen[str], text: str, timeout_s: float) -> list[str]:
    """Read stderr lines until one contains ``text`` (the progress lines)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not seen in {timeout_s}s: {''.join(seen)}")


@pytest.mark.slow
def test_backfill_subprocess_sigint_then_resume_converges(tmp_path: Path) -> None:
    fake = _fake()
    # every reply takes 0.25 s: 60 days of 1m candles (87 pages, 2 at a time, in slices
    # of 8 pages) take ~11 s, so a Ctrl-C sent at the first progress line lands mid-run
    faults = FaultInjector(latency_s=0.25)
    lake = tmp_path / "lake"
    args = [str(DCCD), "backfill", "binance", "BTC/USDT", "ohlc", "--span", "1m"]
    window = ["--end", "2024-03-01", "--root", str(lake)]
    truth = fake.truth_candles(to_ns("2024-01-01"), to_ns("2024-03-01"))
    with serve_in_thread(lambda: with_faults(fake.app(), faults)) as origin:
        env = _env(origin, tmp_path)
        extra = ["--concurrency", "2", "--progress-every", "0.2"]
        proc = subprocess.Popen(
            [*args, "--start", "2024-01-01", *window, *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(proc, "progress: ", 30)
            proc.send_signal(signal.SIGINT)
            out, rest = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, rest
        last = rest.strip().splitlines()[-1]
        assert last.startswith(f"interrupted: {OHLC_1M} committed up to 2024-01-"), rest
        assert last.endswith(f"--end 2024-03-01T00:00:00Z --root {lake} --start last"), last
        store = Store(lake)
        partial = store.read(OHLC_1M)
        assert 0 < partial.height < truth.height  # it did stop mid-run
        # what was committed is exactly the truth's prefix, with its coverage recorded
        assert partial.equals(truth.head(partial.height).select(partial.columns))
        reached = store.coverage(OHLC_1M).end
        assert reached is not None and f"committed up to {iso_datetime(reached)};" in last
        assert list(store.coverage(OHLC_1M)) == [(to_ns("2024-01-01"), reached)]
        assert "rows fetched" in out and f"{partial.height:,} rows fetched" in out, out

        faults.latency_s = 0.0
        resumed = subprocess.run(
            [*args, "--start", "last", *window],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"{OHLC_1M}: "), resumed.stdout
    assert f"{iso_datetime(reached)} -> 2024-03-01T00:00:00Z" in resumed.stdout
    final = Store(lake).read(OHLC_1M)
    assert final.equals(truth.select(final.columns))
    assert Store(lake).holes(OHLC_1M, "2024-01-01", "2024-03-01") == []


def test_backfill_cli_plain_progress_and_origin(fake: FakeBinance, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    daily = ("backfill", "binance", "BTC/USDT", "ohlc", "--span", "1d", "--root", str(lake))
    code, out, err = _run(*daily, "--start", "origin", "--end", "2024-02-01",
                          "--progress-every", "0.05")
    assert code == 0, err
    truth = fake.truth_candles(to_ns("2023-01-01"), to_ns("2024-02-01"), "1d")
    stored = Store(lake).read(DatasetKey.of("binance", "BTC/USDT", "ohlc", "1d"))
    assert stored.equals(truth.select(stored.columns))
    assert out.startswith(f"binance BTC/USDT ohlc 1d: {truth.height} rows fetched, "), out
    assert "2024-01-01T00:00:00Z -> 2024-02-01T00:00:00Z" in out, out  # the listing day
    assert "progress: binance BTC/USDT ohlc 1d: 100.0%, covered until 2024-02-01" in err, err
    code, _, err = _run(*daily, "--start", "someday")
    assert code == 2 and "--start" in err, err


def test_backfill_progress_is_a_rich_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dccd_cli.backfill import _progress_printer

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    show, close = _progress_printer(5.0)
    show(0.25, "binance BTC/USDT ohlc 1m: 25.0%", 1_000)
    show(1.0, "binance BTC/USDT ohlc 1m: 100.0%", 4_000)
    close()
    captured = capsys.readouterr()
    assert "progress: " not in captured.err  # not the plain lines
    assert "100.0%" in captured.out and "4,000 rows" in captured.out, captured.out


def test_backfill_cli_refuses_an_unserved_data_type_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kraken has no funding endpoint: one line saying so and where to look, and the
    exchange is never asked (not even for its market list)."""
    monkeypatch.setenv("DCCD_KRAKEN_REST_URL", "http://127.0.0.1:9")  # nothing listens
    code, _, err = _run("backfill", "kraken", "BTC/USD:USD", "funding",
                        "--root", str(tmp_path / "lake"))
    assert code != 0
    assert "kraken cannot serve funding over rest" in err, err
    assert "docs/exchanges.md" in err and "failed" not in err and "Traceback" not in err, err
