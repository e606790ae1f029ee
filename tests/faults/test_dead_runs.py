"""Dead runs never block an exchange: two runs killed with ``kill -9`` while they hold
both ``dccd_binance`` pool slots are failed with the reason, their slots freed, and the
run waiting behind them starts and finishes, with no manual step.

Real processes with the shipped ``dagster.yaml`` in a temporary ``DAGSTER_HOME``: the
daemon (``dagster-daemon run -w workspace.yaml``, which evaluates the default-running
sensor ``dccd_dead_runs``) and three ``dagster asset materialize`` runs against a fake
Binance on loopback whose klines for the first two days never finish answering (the
runs hang mid-fetch, holding their slots). The liveness timeout is made short with the product's
knob (``DCCD_RUN_LIVENESS_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
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

import psutil
import pytest
from aiohttp import web
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from dccd_core.domain import DatasetKey, to_ns
from dccd_core.storage import Store
from dccd_pipelines.liveness import SENSOR_NAME
from tests.fakes.binance import FakeBinance
from tests.fakes.server import serve_in_thread
from tests.faults.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
POOL = "dccd_binance"
ASSET = "binance/ohlc/btc_usdt_1m"
CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
# DCCD_RUN_LIVENESS_TIMEOUT_S for this test (default 120): short, yet long enough for a
# live run's heartbeat on a loaded 2-core machine
TIMEOUT_S = 10
DAY_MS = 86_400_000


@dataclass
class Exchange:
    """A fake Binance whose klines of the ``held`` days hang until the test ends."""

    fake: FakeBinance
    held: set[int] = field(default_factory=set)  # day numbers (ms // DAY_MS)
    days_asked: list[int] = field(default_factory=list)
    release: asyncio.Event | None = None

    def app(self) -> web.Application:
        @web.middleware
        async def hang(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.endswith("/klines"):
                day = int(request.query.get("startTime", "0")) // DAY_MS
                self.days_asked.append(day)
                if day in self.held:
                    return await self._trickle(request)
            response: web.StreamResponse = await handler(request)
            return response

        app = self.fake.app()
        app.middlewares.append(hang)
        return app

    @staticmethod
    async def _trickle(request: web.Request) -> web.StreamResponse:
        """Hold the request for the test's whole length *without* tripping the client's
        read timeout (30 s between bytes): a 200 whose JSON body is leading whitespace,
        one byte every 2 s. A plain sleep let the client time out and retry until the
        run failed and freed its slot, which made the test depend on machine load."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(1_800):
            await response.write(b" ")
            await asyncio.sleep(2)
        return response




@dataclass
class Project:
    root: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [str(BIN / args[0]), *args[1:]], cwd=self.root, env=self.env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def materialize(self, day: dt.date) -> subprocess.Popen[bytes]:
        return self.start(f"run-{day}", "dagster", "asset", "materialize", "-m",
                          "dccd_pipelines.definitions", "--select", ASSET, "--partition",
                          day.isoformat())

    def logs(self) -> str:
        parts = []
        for log in sorted(self.root.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-25:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(text))
        return "\n".join(parts)


def _kill_tree(pid: int) -> None:
    """``kill -9`` of a run's process and every process it started (its step worker)."""
    try:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=10)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Project, Exchange]]:
    listing_ms = to_ns("2023-12-01") // 1_000_000
    exchange = Exchange(FakeBinance.default(listing_ms=listing_ms))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")  # the shipped settings
    shutil.copy(ROOT / "workspace.yaml", tmp_path / "workspace.yaml")
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=5)
    (tmp_path / "dccd.yaml").write_text(
        "datasets:\n"
        "  - exchange: binance\n"
        "    symbols: [BTC/USDT]\n"
        "    data_types: [ohlc]\n"
        "    spans: [1m]\n"
        f"    start: {start.isoformat()}\n"
    )
    with serve_in_thread(exchange.app) as origin:
        env = {
            **os.environ,
            "DCCD_CONFIG": str(tmp_path / "dccd.yaml"),
            "DCCD_DATA_PATH": str(tmp_path / "lake"),
            "DCCD_BINANCE_REST_URL": origin,
            "DCCD_RUN_LIVENESS_TIMEOUT_S": str(TIMEOUT_S),
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        proj = Project(tmp_path, env)
        try:
            yield proj, exchange
        finally:
            for proc in proj.procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)


def _run_of(instance: DagsterInstance, day: dt.date) -> DagsterRun | None:
    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/partition": day.isoformat()}))
    return runs[0] if runs else None


def _claimed(instance: DagsterInstance) -> list[str]:
    return [s.run_id for s in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots]


def _failure_message(instance: DagsterInstance, run_id: str) -> str:
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "PIPELINE_FAILURE":
            return event.message or ""
    return ""


def test_killed_runs_are_failed_and_free_the_exchange(project: tuple[Project, Exchange]) -> None:
    proj, exchange = project
    today = dt.datetime.now(dt.UTC).date()
    first, second, third = (today - dt.timedelta(days=n) for n in (4, 3, 2))
    exchange.held = {to_ns(first.isoformat()) // 10**6 // DAY_MS,
                     to_ns(second.isoformat()) // 10**6 // DAY_MS}
    with DagsterInstance.get() as instance:
        proj.start("daemon", "dagster-daemon", "run", "-w", "workspace.yaml")
        one, two = proj.materialize(first), proj.materialize(second)
        # both hang mid-fetch, holding the pool's two slots
        wait_for("two runs holding both dccd_binance slots",
                  lambda: len(_claimed(instance)) == 2 and len(exchange.days_asked) >= 2,
                  # a loaded 2-core CI machine took over 60 s to bring the second
                  # `dagster asset materialize` process to its step (both runs STARTED)
                  180, lambda: f"claimed {_claimed(instance)}, runs "
                  f"{[(r.run_id, r.status.value) for r in instance.get_runs()]}\n{proj.logs()}")
        waiting = proj.materialize(third)
        run3 = wait_for("the third run to start", lambda: (
            r if (r := _run_of(instance, third)) and r.status is DagsterRunStatus.STARTED
            else None), 45, proj.logs)
        time.sleep(TIMEOUT_S + 5)  # longer than the timeout: live runs are left alone
        assert len(_claimed(instance)) == 2 and run3.run_id not in _claimed(instance)
        assert instance.get_run_by_id(run3.run_id).status is DagsterRunStatus.STARTED  # type: ignore[union-attr]
        run1, run2 = _run_of(instance, first), _run_of(instance, second)
        assert run1 is not None and run2 is not None

        # kill -9: no RUN_FAILURE is ever written, the runs stay STARTED with their slots.
        # The first: its process only, as an operator would (its step process lives on,
        # orphaned, still stuck in the fetch); the second: with its step process (OOM).
        killed_at = time.monotonic()
        os.kill(one.pid, signal.SIGKILL)
        _kill_tree(two.pid)
        for run in (run1, run2):
            wait_for(f"run {run.run_id} failed by {SENSOR_NAME}", lambda r=run: (
                instance.get_run_by_id(r.run_id).status is DagsterRunStatus.FAILURE),  # type: ignore[union-attr]
                60, proj.logs)
        detected_s = time.monotonic() - killed_at
        for run in (run1, run2):
            message = _failure_message(instance, run.run_id)
            assert "is dead: no sign of life for" in message, message
            assert f"Marked failed by {SENSOR_NAME}; its pool slots are freed ({POOL}: 1)" in (
                message), message
        # the dead runs hold nothing; the waiting run gets a slot and fetches its day
        assert not {run1.run_id, run2.run_id} & set(_claimed(instance))
        third_day = to_ns(third.isoformat()) // 10**6 // DAY_MS
        wait_for("the third run's first request", lambda: third_day in exchange.days_asked,
                  30, proj.logs)
        started_s = time.monotonic() - killed_at
        assert waiting.wait(60) == 0, proj.logs()
        done = instance.get_run_by_id(run3.run_id)
        assert done is not None and done.status is DagsterRunStatus.SUCCESS
        assert _claimed(instance) == []  # the pool is free again
        print(f"dead runs failed {detected_s:.1f} s after kill -9 (timeout {TIMEOUT_S} s); "
              f"the waiting run fetched {started_s:.1f} s after")
    end = (third + dt.timedelta(days=1)).isoformat()
    stored = Store(proj.root / "lake").read(CANDLES, third.isoformat(), end)
    truth = exchange.fake.truth_candles(to_ns(third.isoformat()), to_ns(end), "1m")
    assert stored.height == truth.height > 1_000
    assert stored["ts"].to_list() == truth["ts"].to_list()
    assert stored["close"].to_list() == truth["close"].to_list()
