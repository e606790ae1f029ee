"""``bench_stream --dagster``: the paced stream through ``dagster dev``, all its CPU.

Its own module because it drives a whole Dagster deployment (webserver, daemon, code
servers, the stream's run worker) and sums the CPU of its process group, a harness of
its own beside the in-process scenarios of ``bench_stream``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from typing import Any

import polars as pl
import psutil

from bench.stream_fakes import TICK_S, stream_fake_main
from dccd_core.domain import NS_PER_MS, DatasetKey
from dccd_core.storage import Store

__all__ = ["run_dagster_dev"]


def _group_cpu(pgid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process in the group (reaped children included)."""
    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) != pgid:
                continue
            t = proc.cpu_times()
            cmd = " ".join(proc.cmdline()[1:6])[:90]
            out[proc.pid] = (cmd, t.user + t.system + t.children_user + t.children_system)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


def run_dagster_dev(duration_s: float = 60.0, per_ms: int = 2) -> dict[str, Any]:
    """``dagster dev`` streaming a fake Binance's ``per_ms`` * 1000 aggTrades/s, each its
    own frame, sent every ``TICK_S``: CPU of every Dagster process over ``duration_s``
    once trades land, and the stored trades compared with the fake's truth."""
    import datetime as dt
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from tests.fakes.binance_ws import trade_row

    repo = Path(__file__).parents[1]
    key = DatasetKey.of("binance", "BTC/USDT", "trades")
    ctx = mp.get_context("spawn")
    port_box = ctx.Queue()
    t0_ms = time.time_ns() // NS_PER_MS
    fake = ctx.Process(target=stream_fake_main, args=(per_ms, TICK_S, t0_ms, port_box),
                       daemon=True)
    fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "dagster_home"
        home.mkdir()
        shutil.copy(repo / "dagster.yaml", home / "dagster.yaml")
        shutil.copy(repo / "workspace.yaml", root / "workspace.yaml")
        today = dt.datetime.now(dt.UTC).date().isoformat()
        (root / "dccd.yaml").write_text(
            "datasets:\n  - exchange: binance\n    symbols: [BTC/USDT]\n"
            f"    data_types: [trades]\n    start: {today}\n    stream: [trades]\n"
        )
        origin = port_box.get(timeout=30)
        env = {
            **os.environ,
            "DCCD_CONFIG": str(root / "dccd.yaml"),
            "DCCD_DATA_PATH": str(root / "lake"),
            "DCCD_BINANCE_REST_URL": origin,
            "DCCD_BINANCE_WS_URL": origin.replace("http://", "ws://"),
            "DCCD_STREAM_SENSOR_INTERVAL_S": "5",
            "DAGSTER_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
        }
        dagster = str(Path(sys.executable).parent / "dagster")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = str(sock.getsockname()[1])
        with (root / "dev.log").open("wb") as log:
            dev = subprocess.Popen(
                [dagster, "dev", "-w", "workspace.yaml", "-p", port], cwd=root, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            store = Store(root / "lake")
            deadline = time.monotonic() + 240
            while store.last_ts(key) is None:
                if time.monotonic() > deadline or dev.poll() is not None:
                    tail = (root / "dev.log").read_text()[-3000:]
                    raise RuntimeError(f"no streamed trades after 240 s:\n{tail}")
                time.sleep(1)
            before = _group_cpu(dev.pid)
            time.sleep(duration_s)
            after = _group_cpu(dev.pid)
            stored = store.read(key).sort("ts", "trade_id")
        finally:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(10)
            fake.terminate()
            fake.join(10)
    per_process = {
        f"{pid} {cmd}": round(cpu - before.get(pid, ("", 0.0))[1], 2)
        for pid, (cmd, cpu) in after.items()
    }
    cpu_s = sum(per_process.values())
    # the truth over the stored span (the last millisecond may be cut by the flush)
    first_ms = int(stored.item(0, "ts")) // 1_000_000
    last_ms = int(stored.item(-1, "ts")) // 1_000_000 - 1
    span = stored.filter(pl.col("ts") < (last_ms + 1) * 1_000_000)
    first_i = (first_ms - t0_ms) * per_ms
    last_i = (last_ms - t0_ms + 1) * per_ms
    truth_ids = [str(trade_row(i, t0_ms, per_ms)["a"]) for i in range(first_i, last_i)]
    equal = span.get_column("trade_id").to_list() == truth_ids
    return {
        "scenario": f"dagster dev, {per_ms * 1000:,} aggTrades/s single frames, "
                    f"{duration_s:.0f} s",
        "dagster_cpu_s": round(cpu_s, 2),
        "cpu_us_per_msg": round(cpu_s / (duration_s * per_ms * 1000) * 1e6, 1),
        "stored_rows": span.height,
        "stored_span_equals_truth": equal,
        "per_process_cpu_s": per_process,
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }

