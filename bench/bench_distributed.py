"""The same backfill on 1, 2 and 4 Dask workers (issue 14): wall time and scaling.

A fake Binance with 50 ms added latency per request and eight spot markets; one
``dagster asset materialize`` run of eight datasets (1m candles, ``--days`` days each)
with the shipped ``deploy/dagster.yaml`` (PostgreSQL storage from ``pgserver``),
``DCCD_EXECUTOR=dask`` on a fresh ``dask scheduler`` + N ``dask worker --nthreads 1``,
and the shared request budget in the same PostgreSQL (opened to 10^9 weight/min by the
workers' preload ``bench.open_budget``, so the budget does not bind).

    PYTHONPATH=. .venv/bin/python -m bench.bench_distributed [--days 30] [--workers 1 2 4]

Per worker count: ``run_s`` (RUN_START -> RUN_SUCCESS in the event log: steps on the
cluster, each worker's first code load included), ``wall_s`` (the CLI process, its own
start and definitions load included), rows equal to the truth, and the scaling
efficiency ``run_s(1) / (N * run_s(N))``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASES = ["BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "BNB", "LTC"]
FIRST = "2024-01-01"


def _fake(latency_s: float) -> Any:
    from dccd_core.domain import to_ns
    from tests.fakes.binance import FakeBinance, MarketData
    from tests.fakes.server import FaultInjector

    listing = to_ns("2023-06-01") // 1_000_000
    markets = {("spot", f"{b}USDT"): MarketData(11 + i, listing) for i, b in enumerate(BASES)}
    return FakeBinance(
        markets=markets, weight_limit=10**12, faults=FaultInjector(latency_s=latency_s)
    )


def _run_once(n: int, days: int, origin: str, pg: Any, work: Path) -> dict[str, Any]:
    from dagster import DagsterInstance

    db = f"b_{uuid.uuid4().hex[:10]}"
    pg.psql(f"CREATE DATABASE {db};")
    url = pg.get_uri(db)
    home, lake = work / f"home{n}", work / f"lake{n}"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    last = time.strftime("%Y-%m-%d", time.gmtime(time.mktime(time.strptime(FIRST, "%Y-%m-%d"))
                                                  + (days - 1) * 86400))
    catalog = work / f"dccd{n}.yaml"
    catalog.write_text(
        "datasets:\n  - exchange: binance\n"
        f"    symbols: [{', '.join(b + '/USDT' for b in BASES)}]\n"
        f"    data_types: [ohlc]\n    spans: [1m]\n    start: {FIRST}\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DCCD_DAGSTER_PG_URL": url.replace("postgresql://", "postgresql+psycopg2://", 1),
        "DCCD_RATE_BUDGET_URL": url,
        "DCCD_CONFIG": str(catalog),
        "DCCD_DATA_PATH": str(lake),
        "DCCD_BINANCE_REST_URL": origin,
        "DCCD_EXECUTOR": "dask",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    procs: list[subprocess.Popen[bytes]] = []
    log = (work / f"n{n}.log").open("ab")

    def start(*args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env, cwd=work,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    try:
        sched_file = work / f"sched{n}.json"
        start("dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(sched_file))
        while not sched_file.exists():
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        env["DCCD_DASK_SCHEDULER"] = address
        for i in range(n):
            start("dask", "worker", address, "--no-nanny", "--nthreads", "1",
                  "--no-dashboard", "--name", f"w{i}", "--preload", "bench.open_budget")
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(n, timeout=120)
        selection = ",".join(f"binance/ohlc/{b.lower()}_usdt_1m" for b in BASES)
        began = time.perf_counter()
        run = start("dagster", "asset", "materialize", "-m", "dccd_pipelines.definitions",
                    "--select", selection, "--partition-range", f"{FIRST}...{last}")
        code = run.wait(1800)
        wall_s = time.perf_counter() - began
        os.environ["DAGSTER_HOME"] = str(home)
        os.environ["DCCD_DAGSTER_PG_URL"] = env["DCCD_DAGSTER_PG_URL"]
        with DagsterInstance.get() as instance:
            (record,) = instance.get_runs()
            times = {e.dagster_event.event_type_value: e.timestamp
                     for e in instance.all_logs(record.run_id) if e.dagster_event is not None}
            status = record.status.value
        # event_type_value keeps Dagster's legacy names: PIPELINE_START / PIPELINE_SUCCESS
        done, begun = times.get("PIPELINE_SUCCESS"), times.get("PIPELINE_START")
        run_s = done - begun if done is not None and begun is not None else None
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(10)
        log.close()
    return {"workers": n, "exit": code, "status": status, "run_s": run_s, "wall_s": wall_s,
            "lake": str(lake), "last": last}


def _check(fake: Any, lake: str, days: int) -> tuple[int, bool]:
    from dccd_core.domain import NS_PER_DAY, DatasetKey, to_ns
    from dccd_core.storage import Store

    store, rows, equal = Store(lake), 0, True
    start = to_ns(FIRST)
    for base in BASES:
        key = DatasetKey.of("binance", f"{base}/USDT", "ohlc", "1m")
        truth = fake.truth_candles(start, start + days * NS_PER_DAY, "1m", f"{base}USDT")
        stored = store.read(key)
        rows += stored.height
        equal = equal and stored.equals(truth.select(stored.columns))
    return rows, equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    import pgserver

    from tests.fakes.server import serve_in_thread

    fake = _fake(args.latency_ms / 1000)
    pgdata = tempfile.mkdtemp(prefix="dccd-bench-pg-")
    work = Path(tempfile.mkdtemp(prefix="dccd-bench-dist-"))
    pg = pgserver.get_server(pgdata, cleanup_mode="stop")
    results = []
    try:
        with serve_in_thread(fake.app) as origin:
            for n in args.workers:
                result = _run_once(n, args.days, origin, pg, work)
                result["rows"], result["equal_truth"] = _check(fake, result["lake"], args.days)
                results.append(result)
                print(json.dumps(result), flush=True)
    finally:
        pg.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)
    base = next((r["run_s"] for r in results if r["workers"] == 1 and r["run_s"]), None)
    print(f"\n{len(BASES)} datasets x {args.days} days of 1m candles, "
          f"{args.latency_ms:.0f} ms latency, load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} cores")
    print("| workers | run s | wall s | rows | equal to truth | efficiency |")
    print("|---|---|---|---|---|---|")
    for r in results:
        eff = f"{base / (r['workers'] * r['run_s']):.0%}" if base and r["run_s"] else "-"
        run_s = f"{r['run_s']:.1f}" if r["run_s"] else r["status"]
        print(f"| {r['workers']} | {run_s} | {r['wall_s']:.1f} | {r['rows']} | "
              f"{r['equal_truth']} | {eff} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
