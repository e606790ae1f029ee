"""Archive-first backfill (issue #12): bulk files vs REST only vs dccd 3.8.1, same fakes.

    .venv/bin/python -m bench.bench_archives [--quick] [--no-v3] [--latency-ms 50]
                                             [--only candles|trades]

Two workloads, each over the same fake process at 50 ms added latency per request:

* **a year of 1m candles** (2024; ``--quick``: 30 days): v4 with archives
  (``archives: auto``: twelve monthly ``klines`` zips), v4 REST only (``archives:
  off``: ~530 pages), dccd 3.8.1 (REST, sequential), and the end-to-end Dagster
  figure: ``dagster asset materialize`` of the 366 partitions in a fresh process, on a
  fresh on-disk instance created beforehand, the catalog pointing at both fakes
  (target < 5 s);
* **a day of 2M aggregate trades** (a market of one trade every 43 ms): v4 archives
  (one daily ``aggTrades`` zip), v4 REST only (~2,000 pages), dccd 3.8.1 driven an
  hour at a time (its single call fails, see bench/README.md). Target: archives >= 10x
  faster than REST only.

Every v4 run uses the store as a user gets it (``Store(root)``, default commit bounds;
``--commit-rows 1000000`` commits the trades day in two pieces, as ``bench_backfill``
does) and is checked against the fake's truth (``bench/truth.py``: stored / missing / extra /
duplicated / differing). Peak RSS is each run's own process (``VmHWM``; target
< 400 MB).

The fake process (``--serve``) holds ONE ``FakeBinance`` and serves it twice: its REST
API (``FaultInjector`` latency, ``/__stats``) and ``tests.fakes.archives.FakeArchives``
(data.binance.vision's layout: zip + ``.CHECKSUM``) built from the same truth, so the
archive rows and the REST rows are the same rows. The files a run will ask for are
generated before the origins are printed (``--prewarm``): the clock measures the
client, not the fake zipping 100 MB of CSV.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LISTING = "2023-12-31"
CANDLES = ("2024-01-01", "2025-01-01")
TRADES_DAY = "2024-06-03"
#: one aggregate every 43 ms, no quiet gaps: 2.0M aggregates a day
TRADE_DEN_MS = 43
TRADE_PAGE = 1_000

__all__ = ["bench_fake", "fake_processes", "run"]


# -- the fake ---------------------------------------------------------------------------


def bench_fake() -> Any:
    """The fake Binance of this bench: BTCUSDT spot as the default fake's (same seed and
    listing, so the same candles), with a trade every ``TRADE_DEN_MS`` ms and no quiet
    gaps (the default has one trade per 100 ms and 3 h pauses: 0.86M a day)."""
    from dccd_core.domain import to_ns
    from tests.fakes.binance import FakeBinance
    from tests.fakes.binance_market import MarketData

    listing_ms = to_ns(LISTING) // 1_000_000
    fake = FakeBinance.default(listing_ms=listing_ms, weight_limit=10**12)
    fake.markets[("spot", "BTCUSDT")] = MarketData(
        7, listing_ms, den=TRADE_DEN_MS, quiet_every=10**15
    )
    return fake


def _prewarm_paths(candles: tuple[str, str], trades_day: str) -> list[str]:
    """The archive files the runs read (monthly klines, one daily aggTrades file)."""
    paths = []
    first, end = date.fromisoformat(candles[0]), date.fromisoformat(candles[1])
    month = first.replace(day=1)
    while month < end:
        tag = f"{month.year}-{month.month:02d}"
        paths.append(f"/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-{tag}.zip")
        month = (month + timedelta(days=32)).replace(day=1)
    paths.append(f"/data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-{trades_day}.zip")
    return paths


async def _serve(latency_s: float, prewarm: list[str]) -> None:
    import orjson
    from aiohttp import web

    from tests.fakes.archives import _BINANCE, FakeArchives
    from tests.fakes.server import FaultInjector, serve

    fake = bench_fake()
    fake.faults = FaultInjector(latency_s=latency_s) if latency_s else None
    archives = FakeArchives(binance=fake, latency_s=latency_s)
    for path in prewarm:  # the fake caches each file it built
        match = _BINANCE.match(path)
        if match is not None:
            archives._binance_file(match)
    rest = fake.app()

    async def stats(request: web.Request) -> web.Response:
        body = {"requests": dict(fake.requests), "archive_requests": sum(
            archives.requests.values())}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    rest.router.add_get("/__stats", stats)
    async with serve(rest) as rest_origin, serve(archives.app()) as archive_origin:
        print(f"ORIGINS {rest_origin} {archive_origin}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.contextmanager
def fake_processes(latency_ms: float, prewarm: list[str]) -> Iterator[tuple[str, str]]:
    """The fake REST + archive host process; yields (rest origin, archive origin)."""
    from bench.fake_server import serving_process

    args = ["bench.bench_archives", "--serve", "--latency-ms", str(latency_ms),
            "--prewarm", json.dumps(prewarm)]
    with serving_process(args, "ORIGINS") as (rest, archive):
        yield rest, archive


def fake_stats(rest_origin: str) -> tuple[int, int]:
    """(REST requests, archive requests) the fake has answered so far."""
    import httpx

    stats = httpx.get(f"{rest_origin}/__stats", timeout=30).json()
    return int(sum(stats["requests"].values())), int(stats["archive_requests"])


# -- one v4 run per process -------------------------------------------------------------


def _key(kind: str) -> Any:
    from dccd_core.domain import DatasetKey

    if kind == "candles":
        return DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
    return DatasetKey.of("binance", "BTC/USDT", "trades")


def v4_child(spec: dict[str, Any]) -> dict[str, Any]:
    """``operations.backfill`` of ``spec``'s window into ``spec["root"]`` (archives
    ``auto`` with the archive origin, or ``off``), timed; in the child process."""
    from bench.measure import peak_rss_mb
    from dccd_core.operations.backfill import backfill
    from dccd_core.sources.registry import build_source
    from dccd_core.storage import Store
    from dccd_core.transport import WeightLimiter

    rows = spec.get("commit_rows")
    store = Store(spec["root"]) if rows is None else Store(spec["root"], commit_rows=rows)

    async def main() -> Any:
        async with build_source("binance", rest_url=spec["rest"]) as source:
            source.http.limiter = WeightLimiter(10**12)  # type: ignore[attr-defined]
            extra = ({"archives": "auto", "archive_url": spec["archive"]}
                     if spec["mode"] == "archives" else {"archives": "off"})
            return await backfill(_key(spec["kind"]), start=spec["start_ns"],
                                  end=spec["end_ns"], store=store,
                                  source=source, **extra)

    cpu0, t0 = time.process_time(), time.perf_counter()
    result = asyncio.run(main())
    wall = time.perf_counter() - t0
    return {
        "wall_s": round(wall, 3), "cpu_s": round(time.process_time() - cpu0, 2),
        "rows_written": result.rows_fetched, "client_requests": result.requests,
        "archive_files": getattr(result, "archive_files_done", None),
        "archive_rows": getattr(result, "archive_rows", None),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    from bench.run_all import _child

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return _child([sys.executable, "-m", "bench.bench_archives", "--child", json.dumps(spec)],
                  env, ROOT)


def _check(kind: str, root: str, start_ns: int, end_ns: int, v3: bool = False) -> dict[str, Any]:
    from bench import truth

    got = truth.read_v3(root, kind) if v3 else truth.read_v4(root, kind)
    return truth.check_frame(kind, got, start_ns, end_ns, fake=bench_fake())


def _windows(quick: bool) -> dict[str, tuple[int, int]]:
    from dccd_core.domain import NS_PER_DAY, to_ns

    c_start = to_ns(CANDLES[0])
    c_end = c_start + 30 * NS_PER_DAY if quick else to_ns(CANDLES[1])
    t_start = to_ns(TRADES_DAY)  # a whole day even --quick: a daily file holds days only
    t_end = t_start + NS_PER_DAY
    return {"candles": (c_start, c_end), "trades": (t_start, t_end)}


def _rate(row: dict[str, Any]) -> None:
    check = row.get("check")
    if isinstance(check, dict) and row.get("wall_s"):
        good = check["expected"] - check["missing"]
        row["rows"] = good
        row["rows_per_s"] = good / row["wall_s"]


def _v4_pair(kind: str, window: tuple[int, int], rest: str, archive: str,
             commit_rows: int | None = None) -> dict[str, dict[str, Any]]:
    out = {}
    for mode in ("archives", "rest"):
        with tempfile.TemporaryDirectory(prefix=f"dccd-bench-arch-{mode}-") as root:
            r0, a0 = fake_stats(rest)
            row = _run_child({"kind": kind, "mode": mode, "rest": rest, "archive": archive,
                              "start_ns": window[0], "end_ns": window[1], "root": root,
                              "commit_rows": commit_rows})
            r1, a1 = fake_stats(rest)
            row["requests"] = (r1 - r0) + (a1 - a0)
            row["rest_requests"], row["archive_requests"] = r1 - r0, a1 - a0
            if "error" not in row:
                row["check"] = _check(kind, root, *window)
            _rate(row)
        out[mode] = row
    return out


def _v3(python: Path, kind: str, window: tuple[int, int], rest: str) -> dict[str, Any]:
    from bench.run_all import run_v3

    with tempfile.TemporaryDirectory(prefix="dccd-bench-arch-v3-") as root:
        r0, _ = fake_stats(rest)
        row = run_v3(python, {"scenario": "backfill", "kind": kind, "origin": rest,
                              "start_ns": window[0], "end_ns": window[1], "root": root,
                              "hourly": kind == "trades"})
        row["requests"] = fake_stats(rest)[0] - r0
        if "error" not in row:
            row["check"] = _check(kind, root, *window, v3=True)
        _rate(row)
    return row


def _dagster_cli(window: tuple[int, int], rest: str, archive: str,
                 stock: bool = False) -> dict[str, Any]:
    """``dagster asset materialize`` of the candle window's partitions, archives auto, on
    an instance with the shipped ``dagster.yaml`` (``stock``: Dagster's defaults)."""
    from bench.bench_dagster import _children_cpu, materialize_project
    from dccd_core.domain import NS_PER_DAY, iso_date

    start, last = iso_date(window[0]), iso_date(window[1] - NS_PER_DAY)
    with tempfile.TemporaryDirectory(prefix="dccd-bench-arch-cli-") as tmp:
        env, cmd, lake = materialize_project(
            Path(tmp), {"rest_url": rest, "archive_url": archive}, {"archives": "auto"},
            start, last, stock=stock)
        r0, a0 = fake_stats(rest)
        cpu0, t0 = _children_cpu(), time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd], cwd=ROOT,
                              env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        r1, a1 = fake_stats(rest)
        row: dict[str, Any] = {"wall_s": round(wall, 3), "cpu_s": round(_children_cpu() - cpu0, 2),
                               "requests": (r1 - r0) + (a1 - a0),
                               "rest_requests": r1 - r0, "archive_requests": a1 - a0}
        rss = [ln for ln in done.stderr.splitlines() if ln.startswith("MAXRSS_KB ")]
        if rss:  # the largest process of the command (GNU time: max over its children too)
            row["peak_rss_mb"] = round(int(rss[-1].split()[1]) / 1024, 1)
        if done.returncode:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            row["error"] = f"exit {done.returncode}: {tail}"[:300]
        else:
            row["check"] = _check("candles", str(lake), *window)
            _rate(row)
    return row


# -- the scenarios ----------------------------------------------------------------------


def run(quick: bool = False, python_v3: Path | None = None, latency_ms: float = 50.0,
        only: str | None = None, emit: Callable[[str, dict[str, Any]], None] | None = None,
        commit_rows: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every scenario: (name, row) pairs; ``emit`` sees each as it lands."""
    from dccd_core.domain import NS_PER_DAY

    windows = _windows(quick)
    days = (windows["candles"][1] - windows["candles"][0]) // NS_PER_DAY
    c_label = "1y" if days >= 365 else f"{days}d"
    rows: list[tuple[str, dict[str, Any]]] = []

    def add(name: str, row: dict[str, Any]) -> None:
        rows.append((name, row))
        if emit is not None:
            emit(name, row)

    from dccd_core.domain import iso_date

    prewarm = _prewarm_paths((iso_date(windows["candles"][0]), iso_date(windows["candles"][1])),
                             TRADES_DAY)
    lat = f"@{latency_ms:g}ms"
    with fake_processes(latency_ms, prewarm) as (rest, archive):
        if only in (None, "candles"):
            pair = _v4_pair("candles", windows["candles"], rest, archive)
            add(f"candles 1m {c_label} {lat}: v4 archives", pair["archives"])
            add(f"candles 1m {c_label} {lat}: v4 REST only", pair["rest"])
            add(f"candles 1m {c_label} {lat}: `dagster asset materialize`, archives "
                "(target < 5 s)", _dagster_cli(windows["candles"], rest, archive))
            add(f"candles 1m {c_label} {lat}: the same on Dagster's default instance "
                "(no dagster.yaml)", _dagster_cli(windows["candles"], rest, archive, stock=True))
            if python_v3 is not None:
                add(f"candles 1m {c_label} {lat}: dccd 3.8.1",
                    _v3(python_v3, "candles", windows["candles"], rest))
        if only in (None, "trades"):
            pair = _v4_pair("trades", windows["trades"], rest, archive, commit_rows)
            add(f"aggTrades 2M/day, one day {lat}: v4 archives", pair["archives"])
            add(f"aggTrades 2M/day, one day {lat}: v4 REST only", pair["rest"])
            if python_v3 is not None:
                add(f"aggTrades 2M/day, one day {lat}: dccd 3.8.1 (hour by hour)",
                    _v3(python_v3, "trades", windows["trades"], rest))
    return rows


def render(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """The rows as one Markdown table, with the archive/REST speed-ups."""
    lines = ["| scenario | wall | rows/s | requests (REST + archive) | peak RSS | CPU | "
             "stored rows vs truth |", "|---|---|---|---|---|---|---|"]
    walls = {name: row.get("wall_s") for name, row in rows}
    for name, row in rows:
        if "error" in row:
            lines.append(f"| {name} | error: {row['error']} | | | | | |")
            continue
        check = row.get("check") or {}
        verdict = (f"exact ({check['stored']:,})" if check.get("exact") else
                   ", ".join(f"{k} {check[k]:,}" for k in ("stored", "expected", "missing",
                             "extra", "duplicated", "differing") if k in check))
        req = row.get("requests", "")
        if "rest_requests" in row:
            req = f"{row['requests']:,} ({row['rest_requests']:,} + {row['archive_requests']:,})"
        rss = row.get("peak_rss_mb")
        lines.append(
            f"| {name} | {row['wall_s']:.2f} s | {row.get('rows_per_s', 0):,.0f} | {req} | "
            f"{f'{rss:.0f} MB' if rss else ''} | {row.get('cpu_s', '')} | {verdict} |")
    notes = []
    for kind in ("candles", "aggTrades"):
        arch = next((w for n, w in walls.items() if n.startswith(kind) and n.endswith(
            "v4 archives")), None)
        rest = next((w for n, w in walls.items() if n.startswith(kind) and n.endswith(
            "v4 REST only")), None)
        v3 = next((w for n, w in walls.items() if n.startswith(kind) and "3.8.1" in n), None)
        if arch and rest:
            notes.append(f"{kind}: archives {rest / arch:.1f}x faster than REST only"
                         + (f", {v3 / arch:.1f}x faster than dccd 3.8.1" if v3 else ""))
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="30 days of candles (the trades day stays whole)")
    parser.add_argument("--no-v3", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--only", choices=("candles", "trades"))
    parser.add_argument("--commit-rows", type=int, help="the trades runs' Store(commit_rows=): "
                        "default the store's own (100k: a 2M-row day is rewritten 20 times)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prewarm", default="[]", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args.latency_ms / 1000, json.loads(args.prewarm)))
        return 0
    if args.child:
        try:
            row = v4_child(json.loads(args.child))
        except BaseException as exc:
            row = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps(row, default=str), flush=True)
        return 0
    python_v3 = None
    if not args.no_v3:
        from bench.peers import ensure_v3

        python_v3 = ensure_v3(lambda m: print(m, file=sys.stderr, flush=True))
    load0 = os.getloadavg()[0]
    rows = run(args.quick, python_v3, args.latency_ms, args.only,
               emit=lambda n, r: print(f"{n}: {json.dumps(r, default=str)}", file=sys.stderr,
                                       flush=True), commit_rows=args.commit_rows)
    print(f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after\n")
    print(render(rows))
    return 1 if any("error" in r for _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
