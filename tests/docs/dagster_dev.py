"""Run the README's ``dagster dev`` command in a user project, ask its UI, stop it whole.

The README's main command is ``python3 -m venv .venv && .venv/bin/pip install -e . &&
... dagster dev -w workspace.yaml``. The venv and the editable install already exist
(``readme_env.py`` ran those set-up steps in the project), so ``dev_part`` keeps the
command from its first step after the install, verbatim, and the rest runs with the
project's environment plus a free port through ``DAGSTER_CLI_DEV_PORT`` (the
``dagster`` CLI reads its options from ``DAGSTER_CLI_<COMMAND>_<OPTION>``; the
documented line gives no ``-p``).

``dagster dev`` is slow to stop (DESIGN.md: seen with Dagster 1.13, neither SIGINT nor
SIGTERM stops it within a minute) and the runs it launched are its grandchildren, so
``stop`` sends SIGTERM to the whole session, waits ``grace_s`` and then SIGKILLs the
session and every descendant that left it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.docs.doc_project import UserProject, rewrite_command

__all__ = ["DagsterDev", "dev_part", "free_port"]

_SETUP_STEPS = ("python3 -m venv", "python -m venv", "pip install")


def dev_part(main_command: str) -> str:
    """The README main command from its first step after the venv setup, verbatim."""
    steps = [s.strip() for s in main_command.split("&&")]
    while steps and any(marker in steps[0] for marker in _SETUP_STEPS):
        steps.pop(0)
    if not steps or "dagster dev" not in steps[-1]:
        raise AssertionError(
            f"the README's main command does not end in `dagster dev`: {main_command}"
        )
    return " && ".join(steps)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class DagsterDev:
    """A running ``dagster dev`` (its shell, port and log file)."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    command: str

    @classmethod
    def start(cls, project: UserProject, command: str) -> DagsterDev:
        port = free_port()
        log = project.scratch / "dagster_dev.log"
        env = {**project.env, "DAGSTER_CLI_DEV_PORT": str(port)}
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                ["bash", "-c", rewrite_command(command, project.bin_dir)],
                cwd=project.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(proc, port, log, command)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def graphql(self, query: str, timeout_s: float = 10) -> dict[str, Any]:
        """POST ``query`` to the webserver's GraphQL endpoint; the ``data`` member."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout_s) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def wait_for(self, query: str, done: Any, timeout_s: float, what: str) -> dict[str, Any]:
        """Poll ``query`` until ``done(data)`` holds; fail with the log if it never does."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"`{self.command}` exited with {self.proc.returncode} while waiting for "
                    f"{what}\n{self.log_tail()}"
                )
            try:
                data = self.graphql(query)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                last = exc
            else:
                last = data
                if done(data):
                    return data
            time.sleep(0.5)
        raise AssertionError(
            f"no {what} after {timeout_s:.0f} s; last answer: {last!r}\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 20) -> tuple[float, bool]:
        """SIGTERM the session, SIGKILL after ``grace_s``; (seconds taken, was killed)."""
        t0 = time.monotonic()
        try:
            family = [psutil.Process(self.proc.pid)]
            family += family[0].children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=grace_s)
        killed = bool(alive)
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            for process in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            psutil.wait_procs(alive, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        return time.monotonic() - t0, killed
