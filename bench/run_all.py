"""Every benchmark scenario in one command, dccd 3.8.1 side by side.

    .venv/bin/python -m bench.run_all [--quick] [--no-v3] [--out bench/results/latest.md]

Runs the scenarios of the area scripts (``bench_store``, ``bench_backfill``,
``bench_dagster``, ``bench_stream``, ``bench_archives``) against the fake exchanges,
each scenario in a process of its own (``bench/v4_runner.py``; peak RSS is then that
scenario's own), and the same scenarios with dccd 3.8.1 where it has them
(``bench/peers/``, run by the peer venv's python). The backfills of both versions hit
one fake Binance process (``bench/fake_server.py``) at 0 ms and at 50 ms added latency
per request; requests are counted by the fake (``/__stats``), and each lake is checked
against the fake's truth (``bench/truth.py``): rows stored, missing, extra, duplicated, differing.

Prints ONE markdown table (scenario, wall, rows/s, requests, peak RSS for v4 and
v3, and v3 wall / v4 wall) and writes it to ``bench/results/<timestamp>.md`` and
``--out`` (default ``bench/results/latest.md``). The default run takes ~12 min on a
2-core machine; ``--quick`` uses smaller sizes (30 days of candles, 200k trades)
for a check in ~2 min. ``--render <timestamp>.json`` reprints a saved run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.table import Row, machine, render, wall_text

__all__ = ["Row", "Sizes", "main", "render", "run"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CANDLES_START = "2024-01-01"
TRADES_START = "2024-01-02"
CHILD_TIMEOUT_S = 1_200


@dataclass(frozen=True)
class Sizes:
    """How big each area's scenarios are."""

    candle_days: int
    trades: int
    store_trades: int
    stream_msgs: int
    dagster_days: int

    @property
    def candles_label(self) -> str:
        return "1y" if self.candle_days == 365 else f"{self.candle_days}d"

    @property
    def trades_label(self) -> str:
        n = self.trades
        return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


DEFAULT = Sizes(candle_days=365, trades=1_000_000, store_trades=1_000_000,
                stream_msgs=500_000, dagster_days=365)
QUICK = Sizes(candle_days=30, trades=200_000, store_trades=200_000,
              stream_msgs=100_000, dagster_days=30)


# -- processes --------------------------------------------------------------------------


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise ValueError("no JSON row in the output")


def _child(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S} s"}
    try:
        row = _last_json(done.stdout)
    except ValueError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        row = {"error": f"exit {done.returncode}: {' | '.join(tail)}"[:300]}
    row["process_s"] = round(time.perf_counter() - t0, 2)
    return row


def run_v4(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return _child([sys.executable, "-m", "bench.v4_runner", json.dumps(spec)], env, ROOT)


def run_v3(python: Path, spec: dict[str, Any]) -> dict[str, Any]:
    from bench.peers import RUNNER

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with tempfile.TemporaryDirectory(prefix="dccd-v3-cwd-") as cwd:
        return _child([str(python), str(RUNNER), json.dumps(spec)], env, Path(cwd))


@contextmanager
def fake_binance(latency_ms: float) -> Iterator[str]:
    """The shared fake Binance process; yields its origin."""
    from bench.fake_server import serving_process

    with serving_process(["bench.fake_server", "--latency-ms", str(latency_ms)],
                         "ORIGIN") as (origin,):
        yield origin


def server_requests(origin: str) -> int:
    """Every request the fake has answered so far (data and metadata)."""
    import httpx

    stats = httpx.get(f"{origin}/__stats", timeout=30).json()
    return int(sum(stats["requests"].values()))


# -- areas ------------------------------------------------------------------------------


def _rate(rows: int, wall_s: float) -> float:
    return rows / wall_s if wall_s else 0.0


def _backfill_pair(
    origin: str, v3python: Path | None, kind: str, start_ns: int, end_ns: int,
    concurrency: int, v3_mode: str | None,
) -> tuple[dict[str, Any], dict[str, Any] | str | None]:
    """One backfill by v4 (and v3), each into a fresh lake, each checked."""
    from bench import truth

    with tempfile.TemporaryDirectory(prefix="dccd-bench-v4-") as root:
        before = server_requests(origin)
        v4 = run_v4({"area": "backfill", "kind": kind, "origin": origin, "start_ns": start_ns,
                     "end_ns": end_ns, "concurrency": concurrency, "root": root})
        v4["requests"] = server_requests(origin) - before
        if "error" not in v4:
            v4["check"] = truth.check_frame(kind, truth.read_v4(root, kind), start_ns, end_ns)
    v3: dict[str, Any] | str | None = None
    if v3python is not None and v3_mode is not None:
        with tempfile.TemporaryDirectory(prefix="dccd-bench-v3-") as root:
            before = server_requests(origin)
            v3 = run_v3(v3python, {"scenario": "backfill", "kind": kind, "origin": origin,
                                   "start_ns": start_ns, "end_ns": end_ns, "root": root,
                                   "hourly": v3_mode == "hourly"})
            v3["requests"] = server_requests(origin) - before
            v3["check"] = truth.check_frame(kind, truth.read_v3(root, kind), start_ns, end_ns)
    for side in (v4, v3):
        if isinstance(side, dict) and "check" in side and "wall_s" in side:
            good = side["check"]["expected"] - side["check"]["missing"]
            side["rows"] = good
            side["rows_per_s"] = _rate(good, side["wall_s"])
    return v4, v3


def _short_error(res: dict[str, Any]) -> str:
    """``HTTP 400 {"code":-1127,"msg":"..."}`` without the loopback URL."""
    import re

    error = str(res.get("error", "no error"))
    found = re.search(r"HTTP (\d+) from \S+: (.*)$", error)
    return f"HTTP {found.group(1)} {found.group(2)}" if found else error


def backfill_rows(sizes: Sizes, v3python: Path | None, emit: Callable[[Row], None],
                  extra: Callable[[str], None]) -> list[Row]:
    from bench import truth
    from dccd_core.domain import to_ns

    c_start = to_ns(CANDLES_START)
    c_end = to_ns((date.fromisoformat(CANDLES_START) + timedelta(days=sizes.candle_days))
                  .isoformat())
    t_start, t_end = truth.trades_window(TRADES_START, sizes.trades)
    cl, tl = sizes.candles_label, sizes.trades_label
    rows: list[Row] = []
    for latency in (0, 50):
        with fake_binance(latency) as origin:
            plan = [
                (f"backfill candles 1m {cl} @{latency}ms", "candles", c_start, c_end, 6, "plain"),
                (f"backfill trades {tl} @{latency}ms", "trades", t_start, t_end, 6, "hourly"),
            ]
            if latency:
                plan += [
                    (f"backfill candles 1m {cl} @{latency}ms, v4 sequential (1 in flight)",
                     "candles", c_start, c_end, 1, None),
                    (f"backfill trades {tl} @{latency}ms, v4 sequential (1 in flight)",
                     "trades", t_start, t_end, 1, None),
                ]
            for name, kind, a, b, conc, v3_mode in plan:
                v4, v3 = _backfill_pair(origin, v3python, kind, a, b, conc, v3_mode)
                row = Row("backfill", name, v4, v3)
                if v3_mode is None and v3python is not None:
                    row.v3 = "v3 is always sequential: see the row above"
                if v3_mode == "hourly" and isinstance(v3, dict):
                    row.notes.append(
                        f"v3 driven one hour window at a time ({v3.get('backfill_calls')} "
                        "backfill calls): its single call fails, see 'as released'")
                rows.append(row)
                emit(row)
            if latency == 0 and v3python is not None:
                # v3 as released: one backfill call over the whole trades window
                with tempfile.TemporaryDirectory(prefix="dccd-bench-v3-") as root:
                    before = server_requests(origin)
                    res = run_v3(v3python, {"scenario": "backfill", "kind": "trades",
                                            "origin": origin, "start_ns": t_start,
                                            "end_ns": t_end, "root": root})
                    res["requests"] = server_requests(origin) - before
                    stored = truth.read_v3(root, "trades").height
                why = (f"n/a: fails with {_short_error(res)} after "
                       f"{res['requests']} request(s), {stored} rows stored")
                row = Row("backfill", f"backfill trades {tl} @0ms, v3 as released "
                          "(one backfill call)", None, why)
                rows.append(row)
                emit(row)
            if latency == 0:
                rows += dagster_rows(sizes, origin, emit)
    del extra
    return rows


def store_rows(sizes: Sizes, v3python: Path | None, emit: Callable[[Row], None]) -> list[Row]:
    n = sizes.store_trades
    label = f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"
    plan = [
        ("write_trades_10d", f"store write {label} trades over 10 days (1k-row pages)",
         {"scenario": "store_write_trades", "days": 10, "n": n}),
        ("write_trades_1d", f"store write {label} trades in 1 day (1k-row pages)",
         {"scenario": "store_write_trades", "days": 1, "n": n}),
        ("read_day_1m", "store read 1 day of 1m candles from 3 years (median of 20)",
         {"scenario": "store_read_day"}),
        ("append_candle_1m", "store append 1 candle to 3 years of 1m (median of 20)",
         {"scenario": "store_append"}),
    ]
    rows = []
    for name, title, v3spec in plan:
        with tempfile.TemporaryDirectory(prefix="dccd-bench-store-") as root:
            v4 = run_v4({"area": "store", "name": name, "root": root, "n": n})
        v3: dict[str, Any] | str | None = None
        if v3python is not None:
            with tempfile.TemporaryDirectory(prefix="dccd-bench-v3store-") as root:
                v3 = run_v3(v3python, {**v3spec, "root": root})
            if "rows" in v3 and "rows_per_s" not in v3:
                v3["rows_per_s"] = _rate(int(v3.get("rows_written", v3["rows"])), v3["wall_s"])
            if name.startswith("write") and "rows" in v3:
                v3["check"] = {"stored": v3["rows"], "expected": n, "exact": v3["rows"] == n,
                               "missing": max(0, n - v3["rows"]),
                               "extra": max(0, v3["rows"] - n)}
            v3["requests"] = 0
        row = Row("store", title, v4, v3)
        if name.startswith("write") and isinstance(v3, dict):
            row.notes.append("v3: `save()` per 10k-record batch (its backfill's flush), "
                             "record construction not timed")
        rows.append(row)
        emit(row)
    return rows


def dagster_rows(sizes: Sizes, origin: str, emit: Callable[[Row], None]) -> list[Row]:
    end = "2025-01-01"
    start = (date.fromisoformat(end) - timedelta(days=sizes.dagster_days)).isoformat()
    rows = []
    figures: dict[str, dict[str, Any]] = {}
    days = sizes.dagster_days
    plan = (
        ("direct", f"operations.backfill 1m {days}d (no Dagster)"),
        ("dagster", f"Dagster single-run backfill, {days} partitions 1m (in process, "
                    "ephemeral instance)"),
        ("direct_process", f"operations.backfill 1m {days}d in its own process"),
        ("cli", f"`dagster asset materialize` {days} partitions 1m (own process, "
                "on-disk SQLite instance)"),
    )
    for which, title in plan:
        before = server_requests(origin)
        v4 = run_v4({"area": "dagster", "which": which, "origin": origin,
                     "start": start, "end": end})
        v4["requests"] = server_requests(origin) - before
        figures[which] = v4
        row = Row("dagster", title, v4, "n/a: v3 has no Dagster integration")
        if "cpu_s" in v4:
            row.notes.append(f"{v4['cpu_s']} CPU-s")
        rows.append(row)
        emit(row)
    for num, den, what in (("dagster", "direct", "in process"),
                           ("cli", "direct_process", "`dagster asset materialize` / process")):
        a, b = figures.get(num, {}), figures.get(den, {})
        if a.get("wall_s") and b.get("wall_s"):
            text = f"{a['wall_s'] / b['wall_s']:.2f}x wall"
            if a.get("cpu_s") and b.get("cpu_s"):
                text += f", {a['cpu_s'] / b['cpu_s']:.2f}x CPU"
            row = Row("dagster", f"Dagster / core, {what} (target <= 1.3)", {"value": text},
                      None)
            rows.append(row)
            emit(row)
    v4 = run_v4({"area": "dagster", "which": "defs", "symbols": 50})
    row = Row("dagster", "definitions load, 7 exchanges x 50 symbols x 3 types (target < 5 s)",
              v4, "n/a: v3 has no Dagster integration")
    rows.append(row)
    emit(row)
    return rows


def stream_rows(sizes: Sizes, emit: Callable[[Row], None]) -> list[Row]:
    n = sizes.stream_msgs
    plan = [
        (f"stream aggTrade WS paced 50k/s, {n:,} msgs", n, 50_000.0),
        (f"stream aggTrade WS paced 20k/s, {n:,} msgs", n, 20_000.0),
        (f"stream aggTrade WS blast, {n // 2:,} msgs", n // 2, 0.0),
    ]
    rows = []
    for name, count, rate in plan:
        v4 = run_v4({"area": "stream", "name": name, "n": count, "rate": rate})
        row = Row("stream", name, v4,
                  "n/a: not measured (v3 builds its WS URL inside `_BinanceTradeWS`; the "
                  "fake speaks the combined stream)")
        if "latency_p50_ms" in v4:
            row.notes.append(f"v4 exchange-ts -> durable p50 {v4['latency_p50_ms']} ms, "
                             f"p99 {v4['latency_p99_ms']} ms, "
                             f"{v4.get('consumer_cpu_us_per_msg')} us CPU/msg")
        rows.append(row)
        emit(row)
    return rows


def archive_rows(sizes: Sizes, v3python: Path | None, emit: Callable[[Row], None]) -> list[Row]:
    """Issue #12: archives vs REST only vs dccd 3.8.1 (``bench/bench_archives.py``, its
    own fake process: REST + bulk files from one truth, 50 ms per request). The v3
    column of the archive rows is dccd 3.8.1 over REST; the REST-only rows have none."""
    from bench import bench_archives

    quick = sizes.candle_days < 365
    named = dict(bench_archives.run(quick=quick, python_v3=v3python, latency_ms=50.0))
    rows: list[Row] = []
    for name, side in named.items():
        if "3.8.1" in name:
            continue
        v3: dict[str, Any] | str | None = None
        if name.endswith("v4 archives"):
            peer = next((r for n, r in named.items()
                         if "3.8.1" in n and n.split(":")[0] == name.split(":")[0]), None)
            v3 = peer if peer is not None else (None if v3python is None else "not run")
            rest = named.get(name.replace("v4 archives", "v4 REST only"), {})
            if rest.get("wall_s") and side.get("wall_s"):
                row_note = f"REST only / archives wall: {rest['wall_s'] / side['wall_s']:.1f}x"
            else:
                row_note = ""
        else:
            row_note = ""
            v3 = "v3 has no archives: see the archives row" if v3python else None
        row = Row("archives", name, side, v3)
        if row_note:
            row.notes.append(row_note)
        if isinstance(side, dict) and "rest_requests" in side:
            row.notes.append(f"v4 requests: {side['rest_requests']} REST + "
                             f"{side['archive_requests']} archive files/checksums")
        rows.append(row)
        emit(row)
    return rows


def run(quick: bool = False, with_v3: bool = True,
        emit: Callable[[Row], None] | None = None) -> tuple[list[Row], dict[str, Any]]:
    """Every area; returns the rows and the run's facts (date, machine, load)."""
    sizes = QUICK if quick else DEFAULT
    say = emit or (lambda row: None)
    v3python = None
    if with_v3:
        from bench.peers import ensure_v3

        v3python = ensure_v3(lambda m: print(m, file=sys.stderr, flush=True))
    facts: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_before": os.getloadavg()[0],
    }
    t0 = time.perf_counter()
    rows: list[Row] = []
    rows += store_rows(sizes, v3python, say)
    rows += backfill_rows(sizes, v3python, say, lambda m: None)
    rows += stream_rows(sizes, say)
    rows += archive_rows(sizes, v3python, say)
    facts["total_s"] = time.perf_counter() - t0
    facts["load_after"] = os.getloadavg()[0]
    return rows, facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, ~3 min")
    parser.add_argument("--no-v3", action="store_true", help="skip dccd 3.8.1")
    parser.add_argument("--out", default=str(RESULTS / "latest.md"))
    parser.add_argument("--render", metavar="JSON", help="print the table of a saved run "
                        "(bench/results/<timestamp>.json) without running anything")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        print(render([Row(**r) for r in saved["rows"]], saved["header"], saved["with_v3"]))
        return 0

    def progress(row: Row) -> None:
        v4 = row.v4 if isinstance(row.v4, dict) else {}
        v3 = row.v3 if isinstance(row.v3, dict) else {}
        print(f"[{row.area}] {row.scenario}: v4 {wall_text(v4.get('wall_s'))}"
              + (f" {v4['error']}" if "error" in v4 else "")
              + (f", v3 {wall_text(v3.get('wall_s'))}" if v3 else "")
              + (f" {v3['error']}" if "error" in v3 else ""), file=sys.stderr, flush=True)

    rows, facts = run(quick=args.quick, with_v3=not args.no_v3, emit=progress)
    command = ".venv/bin/python -m bench.run_all" + (" --quick" if args.quick else "") + (
        " --no-v3" if args.no_v3 else "")
    header = (f"`{command}` — {facts['started']}, {facts['total_s'] / 60:.1f} min; "
              f"{facts['machine']}; load average {facts['load_before']:.1f} before, "
              f"{facts['load_after']:.1f} after")
    table = render(rows, header, with_v3=not args.no_v3)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for path in (RESULTS / f"{stamp}.md", Path(args.out)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(
        {"header": header, "with_v3": not args.no_v3, "facts": facts,
         "rows": [row.__dict__ for row in rows]}, default=str, indent=1))
    failed = [r for r in rows if isinstance(r.v4, dict) and "error" in r.v4]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
