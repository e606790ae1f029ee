"""Dagster's overhead on dccd: a 365-partition single-run backfill against the same
window fetched by ``operations.backfill`` alone, and the definitions load time of a
big generated catalog.

``python -m bench.bench_dagster`` prints one JSON row per scenario:
{scenario, wall_s, rows_per_s, requests, peak_rss_mb}. Targets: Dagster / direct
<= 1.2; definitions of 7 exchanges x 50 symbols x 3 data types load in < 5 s.

Both backfills hit the same fake Binance (``tests.fakes.binance``) on loopback, each
into a fresh lake; the Dagster run uses an ephemeral instance and ``materialize`` with
a partition range (one run, one step), checks excluded so both do the same work.

What Dagster adds is mostly fixed per run: the run's start and one materialization
event per partition (365 here, each carrying the run's metadata), about 3 s on a
2-core machine. The ratio is therefore workload-dependent: against a loopback fake a
year of 1m candles takes a few seconds, so the ratio is ~1.3-1.5; against a real
exchange (latency, rate limits) or for trades, the backfill dominates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.measure import peak_rss
from dccd_core.domain import DatasetKey, to_ns

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["bench_cli", "generated_catalog", "init_instance", "materialize_project", "run"]

NATIVE = ("binance", "coinbase", "kraken", "bybit", "okx", "bitfinex", "bitmex")
QUOTE = {"coinbase": "USD", "kraken": "USD", "bitmex": "USDT"}


def _row(scenario: str, wall_s: float, rows: int, requests: int, rss: float) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "wall_s": round(wall_s, 3),
        "rows_per_s": round(rows / wall_s) if wall_s and rows else 0,
        "requests": requests,
        "peak_rss_mb": round(rss, 1),
    }


def _catalog_for(root: Path, origin: str, start: str, span: str) -> Any:
    from dccd_pipelines.catalog import parse_catalog

    raw = {
        "store": {"root": str(root)},
        "exchanges": {"binance": {"rest_url": origin}},
        "datasets": [
            {"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["ohlc"],
             "spans": [span], "start": start}
        ],
    }
    return parse_catalog(raw, env={})


def bench_direct(origin: str, start: str, end: str, span: str) -> dict[str, Any]:
    from dccd_core.storage import Store
    from dccd_pipelines.execution import load_backfill

    backfill = load_backfill()
    key = DatasetKey.of("binance", "BTC/USDT", "ohlc", span)
    with tempfile.TemporaryDirectory() as tmp, peak_rss() as rss:
        from dccd_core.sources.registry import build_source

        async def main() -> Any:
            source = build_source("binance", rest_url=origin)
            try:
                return await backfill(key, start=to_ns(start), end=to_ns(end),
                                      store=Store(tmp), source=source)
            finally:
                await source.http.aclose()

        t0, c0 = time.perf_counter(), time.process_time()
        result = asyncio.run(main())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    row = _row(f"operations.backfill {span} {start}..{end}", wall, result.rows_fetched,
               result.requests, rss["mb"])
    row["cpu_s"] = round(cpu, 3)
    return row


def bench_dagster(origin: str, start: str, end: str, span: str) -> dict[str, Any]:
    from dagster import AssetSelection, DagsterInstance, materialize

    from dccd_pipelines.assets import build_dataset_asset
    from dccd_pipelines.resources import dccd_resources

    last = (date.fromisoformat(end) - timedelta(days=1)).isoformat()
    with tempfile.TemporaryDirectory() as tmp, peak_rss() as rss:
        catalog = _catalog_for(Path(tmp), origin, start, span)
        spec = catalog.datasets[0]
        t0, c0 = time.perf_counter(), time.process_time()
        result = materialize(
            [build_dataset_asset(spec)],
            selection=AssetSelection.assets(spec.key.asset_key_path).without_checks(),
            resources=dccd_resources(str(catalog.store_root)),
            instance=DagsterInstance.ephemeral(),
            tags={"dagster/asset_partition_range_start": start,
                  "dagster/asset_partition_range_end": last},
            raise_on_error=True,
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        mats = result.asset_materializations_for_node(f"fetch_{spec.key.job_name}")
        meta = {k: v.value for k, v in mats[-1].metadata.items()}
    days = (date.fromisoformat(end) - date.fromisoformat(start)).days
    row = _row(f"dagster single-run {days} partitions {span}", wall,
               int(meta["run_rows_fetched"]), int(meta["run_requests"]), rss["mb"])
    row["cpu_s"] = round(cpu, 3)
    return row


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_process(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` to its end (output to ``log``); its wall and CPU seconds (children's
    included: the multiprocess executor's step process)."""
    root = Path(__file__).parents[1]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    wall = time.perf_counter() - t0
    if done.returncode:
        tail = " | ".join(log.read_text().strip().splitlines()[-3:])
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {tail[-400:]}")
    return wall, _children_cpu() - cpu0


def _stored_rows(root: Path, span: str, start: str, end: str) -> int:
    from dccd_core.storage import Store

    key = DatasetKey.of("binance", "BTC/USDT", "ohlc", span)
    return Store(root).read(key, to_ns(start), to_ns(end)).height


def init_instance(env: dict[str, str], stock: bool = False) -> None:
    """Create the instance at ``env["DAGSTER_HOME"]`` (its SQLite files and schema) before
    the timed command: a user's instance exists already, its first creation is not part
    of a run. It has the shipped ``dagster.yaml`` (the README copies it into
    ``$DAGSTER_HOME``); ``stock``: none, Dagster's defaults (the "before" of the storage's
    batch writes)."""
    if not stock:
        shutil.copy(ROOT / "dagster.yaml", Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    code = "from dagster import DagsterInstance; DagsterInstance.get().dispose()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def materialize_project(tmp: Path, binance: dict[str, Any], dataset: dict[str, Any],
                        start: str, last: str, stock: bool = False,
                        ) -> tuple[dict[str, str], list[str], Path]:
    """A user's project in ``tmp`` for one Binance BTC/USDT 1m-or-``dataset["spans"]``
    candle dataset: its catalog (``binance``: the exchange's settings, ``dataset``: keys
    added to the dataset's), an initialised ``DAGSTER_HOME`` (``init_instance``) and the
    ``dagster asset materialize`` command of the partitions ``start``..``last``.
    Returns (env, command, lake)."""
    import yaml

    home, lake = tmp / "dagster_home", tmp / "lake"
    home.mkdir()
    spec = {"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["ohlc"],
            "spans": ["1m"], "start": start, **dataset}
    catalog = tmp / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({
        "store": {"root": str(lake)}, "exchanges": {"binance": binance}, "datasets": [spec],
    }))
    key = DatasetKey.of("binance", "BTC/USDT", "ohlc", spec["spans"][0])
    env = {**_env(), "DAGSTER_HOME": str(home), "DCCD_CONFIG": str(catalog),
           "PYTHONPATH": str(ROOT)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    cmd = [dagster, "asset", "materialize", "-m", "dccd_pipelines.definitions",
           "--select", "/".join(key.asset_key_path), "--partition-range", f"{start}...{last}"]
    init_instance(env, stock=stock)
    return env, cmd, lake


def bench_cli(origin: str, start: str, end: str, span: str) -> dict[str, Any]:
    """The acceptance's own command: ``dagster asset materialize`` of the partition range
    in a fresh process, with a fresh on-disk instance (``DAGSTER_HOME``, SQLite: what a
    user without Postgres has) and the catalog pointing at the fake. Everything a user
    waits for: interpreter start, ``import dagster``, the code location's load (the
    catalog read, the definitions built), the run's creation, the step, its checks,
    every partition's events."""

    last = (date.fromisoformat(end) - timedelta(days=1)).isoformat()
    with tempfile.TemporaryDirectory(prefix="dccd-bench-cli-") as tmp:
        env, cmd, lake = materialize_project(
            Path(tmp), {"rest_url": origin}, {"spans": [span]}, start, last)
        wall, cpu = _timed_process(cmd, env, Path(tmp) / "materialize.log")
        rows = _stored_rows(lake, span, start, end)
    days = (date.fromisoformat(end) - date.fromisoformat(start)).days
    row = _row(f"`dagster asset materialize` {days} partitions {span}", wall, rows, 0, 0.0)
    row["cpu_s"] = round(cpu, 3)
    return row


def bench_direct_process(origin: str, start: str, end: str, span: str) -> dict[str, Any]:
    """``operations.backfill`` of the same window in a fresh process (``--direct-child``):
    the core alone, with the interpreter start and its imports, the CLI row's peer."""
    with tempfile.TemporaryDirectory(prefix="dccd-bench-direct-") as tmp:
        env = {**_env(), "PYTHONPATH": str(Path(__file__).parents[1])}
        cmd = [sys.executable, "-m", "bench.bench_dagster", "--direct-child",
               json.dumps([origin, start, end, span])]
        wall, cpu = _timed_process(cmd, env, Path(tmp) / "direct.log")
        inner = _last_json_line((Path(tmp) / "direct.log").read_text())
    row = _row(f"operations.backfill {span} {start}..{end} in its own process", wall,
               int(inner["rows_per_s"] * inner["wall_s"]), int(inner["requests"]),
               float(inner["peak_rss_mb"]))
    row["cpu_s"] = round(cpu, 3)
    row["backfill_wall_s"] = inner["wall_s"]
    return row


def _last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise ValueError(f"no JSON row in: {text[-300:]}")


def generated_catalog(n_symbols: int = 50, today: date | None = None) -> dict[str, Any]:
    """7 native exchanges x ``n_symbols`` symbols x (ohlc 1h, trades, book)."""
    from dccd_core.catalog import exchange_capability

    today = today or datetime.now(UTC).date()
    datasets = []
    for exchange in NATIVE:
        capability = exchange_capability(exchange)
        depth = 20
        streams = []
        if capability is not None:
            from dccd_core.domain import DataType, Transport

            for transport in (Transport.REST, Transport.WS):
                book = capability.feature(DataType.BOOK, transport)
                if book is not None and book.book_depths:
                    if depth not in book.book_depths:
                        depth = min((d for d in book.book_depths if d >= 20),
                                    default=book.book_depths[-1])
                    break
            trades = capability.feature(DataType.TRADES, Transport.REST)
            if trades is not None and trades.recent_only:
                streams = ["trades"]
        quote = QUOTE.get(exchange, "USDT")
        datasets.append({
            "exchange": exchange,
            "symbols": [f"C{i:03d}/{quote}" for i in range(n_symbols)],
            "data_types": ["ohlc", "trades", "book"],
            "spans": ["1h"],
            "start": (today - timedelta(days=20)).isoformat(),
            "update": "*/15 * * * *",
            "stream": streams,
            "book": {"depth": depth},
        })
    return {"store": {"root": "/tmp/dccd-bench-lake"}, "datasets": datasets}


def _defs_child(path: str) -> None:
    """In a fresh interpreter with DCCD_CONFIG=path: what ``dagster dev`` pays to load the
    code location (import dagster, import the definitions module, which reads the catalog
    and builds ``defs``, resolve every job), each step timed."""
    t0 = time.perf_counter()
    import dagster  # noqa: F401

    t_dagster = time.perf_counter() - t0
    t1 = time.perf_counter()
    from dccd_pipelines.definitions import defs

    t_defs = time.perf_counter() - t1
    t2 = time.perf_counter()
    repo = defs.get_repository_def()
    jobs = repo.get_all_jobs()
    t_resolve = time.perf_counter() - t2
    print(json.dumps({
        "datasets": len(repo.assets_defs_by_key), "jobs": len(jobs),
        "import_dagster_s": t_dagster, "build_defs_s": t_defs, "resolve_s": t_resolve,
        "load_s": t_defs + t_resolve, "rss_mb": psutil.Process().memory_info().rss / 2**20,
    }))


def bench_definitions(n_symbols: int = 50) -> dict[str, Any]:
    import yaml

    root = Path(__file__).parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.yaml"
        path.write_text(yaml.safe_dump(generated_catalog(n_symbols)))
        t0 = time.perf_counter()
        # The module-level ``defs`` reads DCCD_CONFIG on import: point it at the big one too.
        env = {**_env(), "DCCD_CONFIG": str(path), "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_dagster", "--defs-child", str(path)],
            cwd=root, env=env, capture_output=True, text=True, check=True,
        )
        wall = time.perf_counter() - t0
    info = json.loads(done.stdout.strip().splitlines()[-1])
    row = _row(f"definitions load {len(NATIVE)}x{n_symbols}x3 ({info['datasets']} assets, "
               f"{info['jobs']} jobs), excluding `import dagster`", info["load_s"], 0, 0,
               info["rss_mb"])
    row["process_wall_s"] = round(wall, 3)
    row["detail"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in info.items()}
    return row


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def run(days: int = 365, span: str = "1m", end: str = "2025-01-01",
        n_symbols: int = 50, emit: Callable[[dict[str, Any]], None] | None = None,
        with_cli: bool = False) -> list[dict[str, Any]]:
    """Every scenario; one dict per row. ``with_cli``: also the core in its own process
    and ``dagster asset materialize`` in its own (the acceptance's command)."""
    from tests.fakes.binance import FakeBinance
    from tests.fakes.server import serve_in_thread

    start = (date.fromisoformat(end) - timedelta(days=days)).isoformat()
    listing_ms = to_ns(start) // 1_000_000 - 86_400_000
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        if emit is not None:
            emit(row)

    scenarios = (bench_direct, bench_dagster, bench_direct_process, bench_cli)
    for scenario in scenarios if with_cli else scenarios[:2]:
        fake = FakeBinance.default(listing_ms=listing_ms, weight_limit=10**9)
        with serve_in_thread(fake.app) as origin:
            add(scenario(origin, start, end, span))
    pairs = [("ratio dagster/direct, in process", 1, 0)]
    if with_cli:
        pairs.append(("ratio `dagster asset materialize` / core in its own process", 3, 2))
    for name, num, den in pairs:
        add({"scenario": name, "wall_s": round(rows[num]["wall_s"] / rows[den]["wall_s"], 3),
             "cpu_ratio": round(rows[num].get("cpu_s", 0) / (rows[den].get("cpu_s") or 1), 3),
             "rows_per_s": 0, "requests": 0, "peak_rss_mb": 0.0})
    add(bench_definitions(n_symbols))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--span", default="1m")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--cli", action="store_true",
                        help="also `dagster asset materialize` vs the core in its own process")
    parser.add_argument("--defs-child")
    parser.add_argument("--direct-child", help="JSON [origin, start, end, span]")
    args = parser.parse_args()
    if args.defs_child:
        _defs_child(args.defs_child)
        return
    if args.direct_child:
        print(json.dumps(bench_direct(*json.loads(args.direct_child))))
        return
    run(args.days, args.span, n_symbols=args.symbols, emit=lambda r: print(json.dumps(r)),
        with_cli=args.cli)


if __name__ == "__main__":
    main()
