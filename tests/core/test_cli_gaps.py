"""``dccd gaps``: only what has happened is judged, and a damaged file is an error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from dccd_cli import cli
from dccd_core.domain import iso_datetime, now_ns
from dccd_core.storage import Store
from dccd_core.storage.layout import period_path

from .storage.helpers import OHLC_1M, TRADES, ns, ohlc, trades

MIN = 60 * 10**9
SEC = 10**9


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_open_minute_is_not_a_hole_but_a_real_hole_is(tmp_path: Path) -> None:
    now = now_ns()
    store = Store(tmp_path)
    hole = (now - 3 * 3_600 * SEC, now - 2 * 3_600 * SEC)
    store.record_coverage(OHLC_1M, now - 4 * 3_600 * SEC, hole[0])
    store.record_coverage(OHLC_1M, hole[1], now - 30 * SEC)  # covered up to now - 30 s
    code, out, err = _run("gaps", "binance", "BTC/USDT", "ohlc", "--span", "1m",
                          "--root", str(tmp_path))
    assert (code, err) == (0, "")
    assert "1 hole(s), 1h missing" in out
    assert f"  {iso_datetime(hole[0])}  ->  {iso_datetime(hole[1])}  (1h)" in out
    # the open minute is never listed; the closed part of the minute the coverage ended
    # in is "not fetched yet" (only when the test runs in a minute's first 30 s)
    rest = out.splitlines()[2:]
    assert all("not fetched yet" in line and re.search(r"-> \S+:00Z \(", line) for line in rest)


def test_last_seconds_of_trades_are_not_a_hole(tmp_path: Path) -> None:
    now = now_ns()
    store = Store(tmp_path)
    store.record_coverage(TRADES, now - 3_600 * SEC, now - 5 * SEC)  # the latest flush
    code, out, _ = _run("gaps", "binance", "BTC/USDT", "trades", "--root", str(tmp_path))
    assert code == 0
    assert "no holes" in out.splitlines()[0]
    assert "not fetched yet since the latest fetch: " + iso_datetime(now - 5 * SEC) in out


def test_gaps_over_a_corrupt_file_fails_like_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start = ns("2024-03-01")
    store.write(OHLC_1M, ohlc(start + np.arange(60) * MIN))
    store.write(TRADES, trades(["1"], [start]))
    store.record_coverage(OHLC_1M, start, start + 60 * MIN)
    bad = period_path(tmp_path, OHLC_1M, "2024-03")
    bad.write_bytes(b"PAR1 truncated garbage")
    args = ["binance", "BTC/USDT", "ohlc", "--span", "1m", "--root", str(tmp_path)]
    read_code, _, read_err = _run("read", *args)
    code, out, err = _run("gaps", *args)
    assert read_code == code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    prefix = f"error: corrupt period file {bad}: "
    assert read_err.startswith(prefix) and err.startswith(prefix)
    assert err.strip().endswith("delete or move it and re-run the backfill for that period")
    # the other datasets and windows away from the damaged file still answer
    code, out, _ = _run("gaps", "binance", "BTC/USDT", "trades", "--start", "2024-03-01",
                        "--end", "2024-03-01T00:00:00.000000001", "--root", str(tmp_path))
    assert code == 0 and "no holes" in out
