"""Whole-system fault test: ``dagster dev`` stopped while a backfill and a stream run,
then restarted; the stream resumes and heals every gap from REST.

Real processes end to end: ``dagster dev`` (webserver, daemon, code server, run workers)
against a fake Binance on loopback (``tests/fakes/binance_ws.py``: WS aggTrades, REST
aggTrades and klines on one origin, deterministic truth). The supervisor is made fast
with the product's knobs (sensor every 5 s, supervisor timeout 12 s). Three ways a
``dagster dev`` goes away, in one sequence:

1. ``kill PID`` of ``dagster dev`` (a service manager's SIGTERM to the main process): the
   services stop, the in-flight runs do not. The stream run, now unsupervised, must stop
   by itself after the timeout, after a last flush; the backfill run finishes.
2. ``kill -9`` of the whole process group (a crash): the stream run's worker dies
   without a word and its run stays STARTED. The restarted sensor must not wait for it
   forever (it fails it once it has been silent past the timeout and starts a new run).
3. Ctrl-C (SIGINT to the process group): the stream run is interrupted and flushes.

Between the stops the exchange goes on trading (the gaps nobody receives). At the end
the stored trades from the first to the last equal the fake's tape exactly, the
backfilled candles equal the truth, and every Parquet file reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import polars as pl
import psutil
import pytest
from aiohttp import web
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from dccd_core.domain import DatasetKey, ms_to_ns, to_ns
from dccd_core.storage import Store
from dccd_pipelines.streams import STREAM_TAG
from tests.fakes.binance_ws import BinanceStreamFake, interval_ms
from tests.fakes.server import serve_in_thread
from tests.faults.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
STREAM = "binance__trades__stream"
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
CANDLES_ASSET = ["binance", "ohlc", "btc_usdt_1m"]
SENSOR_INTERVAL_S = 5
SUPERVISOR_TIMEOUT_S = 12
HISTORY_DAYS = 4
KLINES_DELAY_S = 1.5  # per klines request: the backfill is still running when we stop
GAP_S = 3.0  # extra exchange time nobody receives, after each stop

T = TypeVar("T")


# -- the exchange ----------------------------------------------------------------------


def _exchange_app(fake: BinanceStreamFake) -> Callable[[], web.Application]:
    @web.middleware
    async def slow_klines(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith("/klines"):
            await asyncio.sleep(KLINES_DELAY_S)
        response: web.StreamResponse = await handler(request)
        return response

    def factory() -> web.Application:
        app = fake.app()
        app.middlewares.append(slow_klines)
        return app

    return factory


def _truth_trades(fake: BinanceStreamFake, first_ts: int, last_ts: int) -> pl.DataFrame:
    rows = fake.truth(first_ts // 1_000_000, last_ts // 1_000_000)
    return pl.DataFrame(
        {
            "ts": [ms_to_ns(r["T"]) for r in rows],
            "trade_id": [str(r["a"]) for r in rows],
            "price": [float(r["p"]) for r in rows],
            "amount": [float(r["q"]) for r in rows],
            "side": ["sell" if r["m"] else "buy" for r in rows],
        },
        schema={"ts": pl.Int64, "trade_id": pl.Utf8, "price": pl.Float64,
                "amount": pl.Float64, "side": pl.Utf8},
    )


def _truth_candles(fake: BinanceStreamFake, start_ns: int, end_ns: int) -> pl.DataFrame:
    rows = fake.truth_klines("1m", start_ns // 1_000_000, end_ns // 1_000_000)
    return pl.DataFrame(
        {
            "ts": [ms_to_ns(r[0]) for r in rows],
            "open": [float(r[1]) for r in rows],
            "high": [float(r[2]) for r in rows],
            "low": [float(r[3]) for r in rows],
            "close": [float(r[4]) for r in rows],
            "volume": [float(r[5]) for r in rows],
            "quote_volume": [float(r[7]) for r in rows],
            "trades": [int(r[8]) for r in rows],
        }
    )


# -- dagster dev as a process group -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _default_signals() -> None:
    # A shell that starts pytest in the background leaves SIGINT ignored, and dagster
    # maps SIGTERM to SIGINT's handler: give the group the signals a terminal gives.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class DagsterDev:
    """One ``dagster dev`` in its own process group (the group id is its pid)."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    @classmethod
    def start(cls, project: Path, env: dict[str, str], log: Path) -> DagsterDev:
        port = _free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [DAGSTER, "dev", "-w", "workspace.yaml", "-p", str(port)],
                cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_default_signals,
            )
        return cls(proc, log, port)

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def group(self) -> list[psutil.Process]:
        """Live processes of the group (run workers included: they stay in it)."""
        alive = []
        for p in psutil.process_iter(["pid", "status"]):
            try:
                if os.getpgid(p.pid) == self.pgid and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except (ProcessLookupError, psutil.Error):
                continue
        return alive

    def signal_main(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def wait_main(self, timeout_s: float) -> bool:
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill_all(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.wait_main(10)

    def tail(self, n: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def _wait_for(what: str, probe: Callable[[], T | None], timeout_s: float,
              dev: DagsterDev | None = None, every_s: float = 0.5) -> T:
    def tail() -> str:
        return f"--- dagster dev log tail ---\n{dev.tail()}" if dev is not None else ""

    return wait_for(what, probe, timeout_s, tail, every_s)


def _wait_for_quietly(probe: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe() and time.monotonic() < deadline:
        time.sleep(0.5)


# -- the instance ----------------------------------------------------------------------


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    fake: BinanceStreamFake
    start: dt.date
    devs: list[DagsterDev] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return Store(self.root / "lake")

    def dev(self) -> DagsterDev:
        dev = DagsterDev.start(self.root, self.env, self.root / f"dev{len(self.devs) + 1}.log")
        self.devs.append(dev)
        return dev


def _stream_runs(instance: DagsterInstance) -> list[DagsterRun]:
    return list(instance.get_runs(filters=RunsFilter(tags={STREAM_TAG: STREAM})))


def _started_stream_run(instance: DagsterInstance, not_in: set[str]) -> DagsterRun | None:
    for run in _stream_runs(instance):
        if run.run_id not in not_in and run.status is DagsterRunStatus.STARTED:
            return run
    return None


def _started_backfill_run(instance: DagsterInstance) -> DagsterRun | None:
    for run in instance.get_runs(limit=20):
        if run.tags.get("dagster/backfill") and run.status is DagsterRunStatus.STARTED:
            return run
    return None


def _worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        meta = getattr(event.event_specific_data, "metadata", None) if event else None
        pid = meta.get("pid") if meta else None
        if pid is not None:
            return int(getattr(pid, "text", pid))
    return None


def _materializations(instance: DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    out = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        mat = record.asset_materialization
        if mat is not None:
            out.append({k: v.value for k, v in mat.metadata.items()})
    return out


def _messages(instance: DagsterInstance, run_id: str) -> str:
    return "\n".join(r.user_message or "" for r in instance.all_logs(run_id))


def _pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _launch_backfill(port: int, partitions: list[str]) -> str:
    """The UI's "Materialize partitions" of the candles asset (one run: single_run)."""
    query = """
    mutation($params: LaunchBackfillParams!) {
      launchPartitionBackfill(backfillParams: $params) {
        __typename
        ... on LaunchBackfillSuccess { backfillId }
        ... on PythonError { message }
        ... on InvalidSubsetError { message }
      }
    }"""
    params = {"assetSelection": [{"path": CANDLES_ASSET}], "partitionNames": partitions}
    reply = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=60,
                       json={"query": query, "variables": {"params": params}})
    reply.raise_for_status()
    result = reply.json()["data"]["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return str(result["backfillId"])


def _webserver_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    fake = BinanceStreamFake(per_ms=1, kline_speed=1.0)
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=HISTORY_DAYS)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    shutil.copy(ROOT / "workspace.yaml", tmp_path / "workspace.yaml")
    (tmp_path / "dccd.yaml").write_text(
        "datasets:\n"
        "  - exchange: binance\n"
        "    symbols: [BTC/USDT]\n"
        "    data_types: [ohlc, trades]\n"
        "    spans: [1m]\n"
        f"    start: {start.isoformat()}\n"
        "    stream: [trades]\n"
    )
    with serve_in_thread(_exchange_app(fake)) as origin:
        env = {
            **os.environ,
            "DCCD_CONFIG": str(tmp_path / "dccd.yaml"),
            "DCCD_DATA_PATH": str(tmp_path / "lake"),
            "DCCD_BINANCE_REST_URL": origin,
            "DCCD_BINANCE_WS_URL": origin.replace("http://", "ws://"),
            "DCCD_STREAM_SENSOR_INTERVAL_S": str(SENSOR_INTERVAL_S),
            "DCCD_STREAM_SUPERVISOR_TIMEOUT_S": str(SUPERVISOR_TIMEOUT_S),
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        proj = Project(tmp_path, env, fake, start)
        try:
            yield proj
        finally:
            for dev in proj.devs:
                dev.kill_all()


# -- the scenario ----------------------------------------------------------------------


def test_stream_resumes_and_heals_across_dagster_dev_restarts(project: Project) -> None:
    fake, store = project.fake, project.store
    with DagsterInstance.get() as instance:
        seen: set[str] = set()

        # -- 1. up: the sensor starts the stream, trades land; a backfill is launched --
        dev = project.dev()
        first = _wait_for("the sensor's stream run", lambda: _started_stream_run(
            instance, seen), 150, dev)
        seen.add(first.run_id)
        _wait_for("streamed trades in the store", lambda: store.last_ts(TRADES), 60, dev)
        _wait_for("the webserver", lambda: _webserver_up(dev.port), 60, dev)
        days = [(project.start + dt.timedelta(days=i)).isoformat() for i in range(HISTORY_DAYS)]
        _launch_backfill(dev.port, days)
        backfill = _wait_for("the backfill run", lambda: _started_backfill_run(instance),
                             90, dev)
        _wait_for("the backfill's first klines request",
                  lambda: fake.kline_rest_requests > 0, 60, dev)

        # -- stop 1: `kill PID` of dagster dev; the runs are left orphaned ---------------
        stream_pid = _worker_pid(instance, first.run_id)
        backfill_pid = _worker_pid(instance, backfill.run_id)
        assert stream_pid and backfill_pid
        stopped_at = time.time()
        dev.signal_main(signal.SIGTERM)
        if not dev.wait_main(30):
            dev.signal_group(signal.SIGKILL)
        assert not _pid_gone(stream_pid), "the stream run should outlive dagster dev"
        # unsupervised, the stream stops by itself once the timeout has passed, flushed
        _wait_for("the orphaned stream run to stop by itself", lambda: _pid_gone(stream_pid),
                  SUPERVISOR_TIMEOUT_S + 45, dev)
        alone_s = time.time() - stopped_at
        orphan = instance.get_run_by_id(first.run_id)
        assert orphan is not None and orphan.status is DagsterRunStatus.SUCCESS, orphan
        assert "no sensor tick" in _messages(instance, first.run_id)
        mats = _materializations(instance, first.run_id)
        assert mats and mats[-1]["final"] is True
        last_written = store.last_ts(TRADES)
        assert last_written is not None and last_written > stopped_at * 1e9  # wrote alone
        # the backfill run finished on its own; the store reads either way
        _wait_for("the orphaned backfill run to end", lambda: _pid_gone(backfill_pid), 90, dev)
        done = instance.get_run_by_id(backfill.run_id)
        assert done is not None and done.status is DagsterRunStatus.SUCCESS, done
        store.read(CANDLES)
        # the code server leaves once its runs are done; whatever is left is not writing
        _wait_for_quietly(lambda: not dev.group(), 40)
        dev.kill_all()
        time.sleep(GAP_S)
        assert store.last_ts(TRADES) == last_written  # nobody is writing any more

        # -- 2. restarted: a new stream run heals the gap, then a crash (kill -9) --------
        dev = project.dev()
        second = _wait_for("a new stream run after the restart",
                           lambda: _started_stream_run(instance, seen), 150, dev)
        seen.add(second.run_id)
        restarted_ns = time.time_ns()
        _wait_for("the new run to write past the gap",
                  lambda: (store.last_ts(TRADES) or 0) > restarted_ns, 60, dev)
        _wait_for("the new run to report the healed gap", lambda: any(
            m["healed_rows"] > 0 for m in _materializations(instance, second.run_id)), 30, dev)
        dev.kill_all()  # a crash: no flush, no RUN_FAILURE, the run stays STARTED
        crashed = instance.get_run_by_id(second.run_id)
        assert crashed is not None and crashed.status is DagsterRunStatus.STARTED
        time.sleep(GAP_S)

        # -- 3. restarted: the dead STARTED run must not block the stream ---------------
        dev = project.dev()
        third = _wait_for("a stream run replacing the dead one",
                          lambda: _started_stream_run(instance, seen), 150, dev)
        dead = instance.get_run_by_id(second.run_id)
        assert dead is not None and dead.status is DagsterRunStatus.FAILURE
        restarted_ns = time.time_ns()
        _wait_for("the third run to write past the gap",
                  lambda: (store.last_ts(TRADES) or 0) > restarted_ns, 60, dev)
        third_pid = _worker_pid(instance, third.run_id)
        assert third_pid
        # -- stop 3: Ctrl-C (SIGINT to the group): the run is interrupted, and flushes --
        interrupted_ns = time.time_ns()
        dev.signal_group(signal.SIGINT)
        _wait_for("the interrupted stream run to end", lambda: _pid_gone(third_pid), 60, dev)
        if not dev.wait_main(30):
            dev.signal_group(signal.SIGKILL)
        last = instance.get_run_by_id(third.run_id)
        assert last is not None and last.is_finished
        # its last flush ran on the interrupt (a 5 s flush cycle would leave seconds out)
        tail_ms = ((store.last_ts(TRADES) or 0) - interrupted_ns) / 1e6
        print(f"interrupted run: status {last.status.value}, last stored trade "
              f"{tail_ms:+.0f} ms from the SIGINT, final flush logged: "
              f"{[m['final'] for m in _materializations(instance, third.run_id)][-1:]}")
        assert tail_ms > -1000
        assert not any(r.status is DagsterRunStatus.STARTED for r in _stream_runs(instance))
        print(f"orphaned stream run stopped itself {alone_s:.1f} s after dagster dev "
              f"(timeout {SUPERVISOR_TIMEOUT_S} s); stream runs: {len(_stream_runs(instance))}")

    # -- the data: trades equal the tape from the first to the last, candles the truth ---
    stored = store.read(TRADES)
    ids = stored.get_column("trade_id").cast(pl.Int64)
    assert ids.n_unique() == stored.height, "duplicate trades"
    assert ids.max() - ids.min() + 1 == stored.height, "a gap was not healed"  # type: ignore[operator]
    first_ts, last_ts = int(stored["ts"].min()), int(stored["ts"].max())  # type: ignore[arg-type]
    truth = _truth_trades(fake, first_ts, last_ts)
    assert stored.height > 20_000
    assert stored.equals(truth), "stored trades differ from the tape"
    start_ns = to_ns(project.start.isoformat())
    end_ns = start_ns + HISTORY_DAYS * 86_400 * 10**9
    candles = store.read(CANDLES, start_ns, end_ns)
    expected = _truth_candles(fake, start_ns, end_ns)
    assert candles.height == HISTORY_DAYS * 86_400_000 // interval_ms("1m")
    assert candles.equals(expected.select(candles.columns)), "candles differ from the truth"
    files = sorted((project.root / "lake").rglob("*.parquet"))
    assert files
    for path in files:
        pl.read_parquet(path)
