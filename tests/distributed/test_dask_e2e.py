"""End to end beyond one machine (#14): the shipped ``deploy/dagster.yaml`` (run, event
and schedule storage in a real PostgreSQL), a real Dask cluster (a scheduler and two
worker processes, ``DCCD_EXECUTOR=dask``), the shared request budget, and a backfill of
four Binance datasets from a fake on loopback in one run, its steps spread over the two
workers. One worker is killed with ``kill -9`` while a step runs on it: no committed row
is lost, and a re-run of the same backfill lands every dataset equal to the truth.

The lake is either a local folder or, the deployment of docs/deployment.md, a bucket on
a real S3-compatible server (moto's server mode, ``tests/fakes/s3.py``): ``store.root:
s3://...`` with the endpoint, region and a short ``lease_ttl_s`` in the catalog and only
the credentials in the AWS variables, so the workers reach the bucket exactly as the
catalog says. On S3 the killed worker also leaves a live writer lease behind on the
dataset it was writing (planted just before the kill: the real step is hung on a
request, between commits): the step the survivor takes over must wait that lease out
and take it over, and the bucket is then read by ``pl.scan_parquet`` alone.

Everything is a real process started here: ``dask scheduler``, ``dask worker`` (no
nanny, so the killed worker stays dead), ``dagster asset materialize``, ``moto_server``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, to_ns
from dccd_core.storage import Store
from dccd_core.storage.layout import lock_path
from dccd_core.storage.objectstore import ObjectPath
from tests.fakes.binance import FakeBinance
from tests.fakes.s3 import S3Server, running_s3_server
from tests.fakes.server import serve_in_thread
from tests.faults.test_dead_runs import Exchange
from tests.faults.waiting import wait_for

for _needed in ("dagster_dask", "distributed", "dagster_postgres"):
    pytest.importorskip(_needed, reason=f"{_needed} is a dev dependency: pip install -e '.[dev]'")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
FIRST, LAST = "2024-02-01", "2024-02-06"  # partitions, inclusive
START_NS, END_NS = to_ns(FIRST), to_ns("2024-02-07")
KEYS = [
    DatasetKey.of("binance", symbol, "ohlc", span)
    for symbol in ("BTC/USDT", "ETH/USDT")
    for span in ("1m", "1h")
]
#: the dataset whose last days hang until the test lets them go: its step is the one
#: running on the worker that gets killed
HELD = KEYS[0]
DAY_MS = 86_400_000
#: the lease TTL the S3 catalog sets: how long the killed worker's lease blocks its
#: dataset (the 30 s default would dominate the test)
LEASE_TTL_S = 3.0


def _asset(key: DatasetKey) -> str:
    return f"binance/ohlc/{key.symbol.base.lower()}_{key.symbol.quote.lower()}_{key.span}"


@dataclass(frozen=True)
class Lake:
    """Where the cluster writes: the catalog's ``store:`` block and environment, and
    the test's own reader of the same lake."""

    store: Store
    catalog: str  # the catalog's store: block, "" for none
    env: dict[str, str]
    s3: S3Server | None = None


@pytest.fixture(params=["disk", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "disk":
        folder = tmp_path / "lake"
        yield Lake(Store(folder), "", {"DCCD_DATA_PATH": str(folder)})
        return
    with running_s3_server() as server:
        root = f"s3://{server.new_bucket()}/lake"
        everything = server.env()  # the endpoint and region come from the catalog
        credentials = {
            name: everything[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
        catalog = (
            "store:\n"
            f"  root: {root}\n"
            f"  endpoint_url: {server.endpoint}\n"
            f"  region: {server.options().region}\n"
            f"  lease_ttl_s: {LEASE_TTL_S}\n"
        )
        store = Store(root, object_store=server.options(lease_ttl_s=LEASE_TTL_S))
        yield Lake(store, catalog, credentials, server)


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [str(BIN / args[0]), *args[1:]], cwd=self.root, env=self.env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def materialize(self, name: str) -> subprocess.Popen[bytes]:
        return self.start(
            name, "dagster", "asset", "materialize", "-m", "dccd_pipelines.definitions",
            "--select", ",".join(_asset(key) for key in KEYS),
            "--partition-range", f"{FIRST}...{LAST}",
        )

    def logs(self) -> str:
        parts = []
        for log in sorted(self.root.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)


@pytest.fixture
def cluster(
    postgres_url: str, lake: Lake, tmp_path: Path
) -> Iterator[tuple[Cluster, Exchange]]:
    exchange = Exchange(FakeBinance.default(listing_ms=to_ns("2023-12-01") // NS_PER_MS))
    held_from = to_ns("2024-02-04") // NS_PER_MS // DAY_MS
    exchange.held = set(range(held_from, held_from + 3))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")  # the shipped file
    (tmp_path / "dccd.yaml").write_text(
        lake.catalog
        + "datasets:\n"
        "  - exchange: binance\n"
        "    symbols: [BTC/USDT, ETH/USDT]\n"
        "    data_types: [ohlc]\n"
        "    spans: [1m, 1h]\n"
        f"    start: {FIRST}\n"
    )
    scheduler_file = tmp_path / "scheduler.json"
    with serve_in_thread(exchange.app) as origin:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = {
            **inherited,
            **lake.env,
            "DAGSTER_HOME": str(home),
            # the psycopg2 driver, named: SQLAlchemy 2.1 reads a bare postgresql:// as
            # psycopg 3, with which dagster-postgres's NOTIFY fails (deploy/dagster.yaml)
            "DCCD_DAGSTER_PG_URL": postgres_url.replace(
                "postgresql://", "postgresql+psycopg2://", 1
            ),
            "DCCD_RATE_BUDGET_URL": postgres_url,
            "DCCD_CONFIG": str(tmp_path / "dccd.yaml"),
            "DCCD_BINANCE_REST_URL": origin,
            "DCCD_EXECUTOR": "dask",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        proj = Cluster(tmp_path, env)
        try:
            proj.start("scheduler", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                       "--no-dashboard", "--scheduler-file", str(scheduler_file))
            wait_for("the Dask scheduler", scheduler_file.exists, 60, proj.logs)
            address = json.loads(scheduler_file.read_text())["address"]
            env["DCCD_DASK_SCHEDULER"] = address
            for n in (1, 2):
                proj.start(f"worker{n}", "dask", "worker", address, "--no-nanny",
                           "--nthreads", "1", "--no-dashboard", "--name", f"w{n}")
            yield proj, exchange
        finally:
            exchange.held = set()
            for proc in proj.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)


def _step_pids(instance: Any) -> dict[str, list[int]]:
    """step key -> the pids of the processes that started it, in order, from the event
    log of the first run."""
    pids: dict[str, list[int]] = {}
    runs = instance.get_runs()
    if not runs:
        return pids
    for record in instance.all_logs(runs[-1].run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "STEP_START":
            pids.setdefault(record.step_key, []).append(event.pid)
    return pids


def _workers_used(pids: dict[str, list[int]]) -> set[int]:
    return {pid for started in pids.values() for pid in started}


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the run ended before its steps were seen on both workers"
    return True


def _rows(store: Store) -> dict[DatasetKey, pl.DataFrame]:
    return {key: store.read(key) for key in KEYS}


def _plant_dead_lease(store: Store, key: DatasetKey, victim: int) -> str:
    """Leave the live lease a writer killed mid-commit leaves on ``key``: renewed a
    moment ago, so it blocks the dataset for a whole TTL. Returns its owner."""
    lease = lock_path(store.root, key)
    assert isinstance(lease, ObjectPath), lease
    owner = f"killed-worker:{victim}:planted"
    expires_ns = time.time_ns() + int(LEASE_TTL_S * 1e9)
    lease.write_text(json.dumps({"owner": owner, "expires_ns": expires_ns}))
    return owner


def _assert_scan_parquet_equals(lake: Lake, truths: dict[DatasetKey, pl.DataFrame]) -> None:
    """polars alone, with the documented storage options, reads the bucket equal to
    the truth (no dccd code between the bucket and the frame)."""
    assert lake.s3 is not None
    scanned = pl.scan_parquet(
        f"{lake.store.root}/ohlc/**/*.parquet",
        hive_partitioning=True,
        storage_options=lake.s3.storage_options(),
    ).collect()
    for key, truth in truths.items():
        symbol = f"{key.symbol.base}-{key.symbol.quote}"
        rows = scanned.filter(
            (pl.col("exchange") == "binance")
            & (pl.col("symbol") == symbol)
            & (pl.col("span") == str(key.span))
        )
        assert rows.select(truth.columns).sort("ts").equals(truth), key


def test_backfill_on_two_dask_workers_survives_a_killed_worker(
    cluster: tuple[Cluster, Exchange], lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance, DagsterRunStatus

    proj, exchange = cluster
    workers = {proj.procs["worker1"].pid, proj.procs["worker2"].pid}
    monkeypatch.setenv("DAGSTER_HOME", proj.env["DAGSTER_HOME"])
    monkeypatch.setenv("DCCD_DAGSTER_PG_URL", proj.env["DCCD_DAGSTER_PG_URL"])
    store = lake.store
    with DagsterInstance.get() as instance:
        first = proj.materialize("run1")
        # both workers run steps; the held dataset's step hangs on its last days
        pids = wait_for(
            "steps started on both Dask workers, the held one asking for its last days",
            lambda: (p if _alive(first) and len(_workers_used(p := _step_pids(instance))) >= 2
                     and exchange.days_asked and max(exchange.days_asked) in exchange.held
                     else None),
            90, proj.logs,
        )
        assert _workers_used(pids) <= workers, (pids, workers)  # steps ran on the workers
        held_step = next(step for step in pids if _asset(HELD).replace("/", "__") in step)
        (victim,) = pids[held_step]
        (survivor,) = workers - {victim}
        before = _rows(store)
        planted = _plant_dead_lease(store, HELD, victim) if lake.s3 else None
        os.kill(victim, signal.SIGKILL)
        exchange.held = set()  # the exchange answers again (the hung request stays hung)
        # the scheduler hands the killed worker's step to the survivor: the run completes
        assert first.wait(240) == 0, proj.logs()
        assert instance.get_runs()[-1].status is DagsterRunStatus.SUCCESS
        assert _step_pids(instance)[held_step] == [victim, survivor]
        after_kill = _rows(store)
        if planted is not None:  # the survivor waited out the dead lease, took it over
            lease = json.loads(lock_path(store.root, HELD).read_text())
            assert lease["owner"] != planted and lease["expires_ns"] == 0, lease
            (name,) = (n for n, proc in proj.procs.items() if proc.pid == survivor)
            said = (proj.root / f"{name}.log").read_text(errors="replace")
            assert f"took over the expired lease {lock_path(store.root, HELD)} of {planted}" in said
        for key in KEYS:  # nothing committed before the kill is gone
            missing = before[key].join(after_kill[key], on="ts", how="anti")
            assert missing.height == 0, (key, missing.height)

        rerun = proj.materialize("run2")
        assert rerun.wait(240) == 0, proj.logs()
        runs = instance.get_runs()
        assert runs[0].status is DagsterRunStatus.SUCCESS, proj.logs()

    fake = exchange.fake
    truths = {}
    for key in KEYS:
        native = key.symbol.base + key.symbol.quote
        truth = fake.truth_candles(START_NS, END_NS, str(key.span), native)
        stored = store.read(key)
        truths[key] = truth.select(stored.columns)
        assert stored.equals(truths[key]), key
    if lake.s3 is not None:
        _assert_scan_parquet_equals(lake, truths)
