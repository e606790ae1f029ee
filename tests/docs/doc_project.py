"""A user's dccd project, where the docs' commands run for real.

``UserProject.create`` takes a checkout that the README's own set-up command installed
(``readme_env.py``: a copy of the repository with its ``.venv``, never the developers'
environment) and adds what the README's main command leaves behind —
``.dagster_home/dagster.yaml`` — a ``HOME`` of its own (so ``~/...`` in a doc lands
there too), and an environment that points Binance at a fake on loopback
(``DCCD_BINANCE_REST_URL`` / ``_WS_URL``) and every other exchange at a closed loopback
port. HTTP(S) proxies point at that dead port as well, with loopback exempt, so a
request that escaped the overrides would fail instead of reaching the internet.

Commands run as documented, with one rewrite: ``.venv/bin/X`` and a bare ``dccd``,
``dagster``, ``python``, ``pip`` in command position become the executables of the
checkout's ``.venv`` (a reader with the venv activated). The lines of one ``bash``
block run in ONE shell, in order (an ``export`` reaches the next line, as for a user
pasting the block), each with its own stdout, stderr, exit code and duration. A
documented ``pip install`` (an extra the docs name) is the one command that may leave
loopback: it reaches the package registry, as the README's set-up did.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.docs.doc_blocks import REPO, Block
from tests.docs.readme_env import clean_env

__all__ = [
    "BIN",
    "CommandResult",
    "ProgramResult",
    "UserProject",
    "rewrite_command",
]

BIN = Path(sys.executable).parent
PROJECT_FILES = ("dccd.yaml", "dagster.yaml", "workspace.yaml")
DEAD_ORIGIN = "127.0.0.1:9"  # discard port: nothing listens, a connection is refused
OTHER_EXCHANGES = ("coinbase", "kraken", "bybit", "okx", "bitfinex", "bitmex")
_PROGRAM = Path(__file__).with_name("doc_program.py")

_PIP_INSTALL = re.compile(r"\bpip3? install\b")
_VENV_BIN = re.compile(r"(?<![\w/.~-])\.venv/bin/")
_COMMAND_WORD = re.compile(
    r"(?P<lead>(?:^|&&|\|\||[;|(])\s*"
    r"(?:[A-Za-z_]\w*=(?:\"[^\"]*\"|'[^']*'|[^\s\"']+)\s+)*)"
    r"(?P<word>dccd|dagster|python3?|pip)(?=\s|$)"
)


def rewrite_command(command: str, bin_dir: Path = BIN) -> str:
    """``command`` with the venv's executables made absolute (see the module docstring)."""
    prefix = shlex.quote(str(bin_dir)) + "/"
    command = _VENV_BIN.sub(lambda _: prefix, command)
    return _COMMAND_WORD.sub(lambda m: m["lead"] + prefix + m["word"], command)


@dataclass(frozen=True)
class CommandResult:
    """One documented command, as documented and as run, and what it did."""

    where: str
    command: str
    ran: str
    code: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.where}: `{self.command}` exited {self.code} after {self.seconds:.1f} s\n"
            f"--- stdout (tail)\n{self.stdout[-3000:]}\n--- stderr (tail)\n{self.stderr[-3000:]}"
        )


@dataclass(frozen=True)
class ProgramResult:
    """One documented python program and what it did (``tables``: rows per frame)."""

    where: str
    source: str
    code: int
    stdout: str
    stderr: str
    seconds: float
    tables: dict[str, int]

    def describe(self) -> str:
        return (
            f"{self.where}: python block exited {self.code} after {self.seconds:.1f} s\n"
            f"{self.source}\n--- stdout (tail)\n{self.stdout[-3000:]}\n"
            f"--- stderr (tail)\n{self.stderr[-3000:]}"
        )


@dataclass
class UserProject:
    """The project folder, its ``HOME`` and the environment the docs' commands run in."""

    root: Path
    home: Path
    scratch: Path
    env: dict[str, str]
    bin_dir: Path = BIN

    @classmethod
    def create(
        cls, base: Path, *, binance_origin: str, checkout: Path | None = None
    ) -> UserProject:
        """In ``checkout`` (set up by the README; its ``.venv`` runs every command), or,
        without one, in a bare folder run by this interpreter's environment."""
        home, scratch = base / "home", base / "scratch"
        for folder in (home, scratch):
            folder.mkdir(parents=True)
        if checkout is not None:
            root, bin_dir = checkout, checkout / ".venv" / "bin"
        else:
            root, bin_dir = base / "project", BIN
            root.mkdir(parents=True)
            for name in PROJECT_FILES:
                shutil.copy2(REPO / name, root / name)
        (root / ".dagster_home").mkdir(exist_ok=True)
        shutil.copy2(REPO / "dagster.yaml", root / ".dagster_home" / "dagster.yaml")
        env = {
            k: v
            for k, v in clean_env().items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        }
        env.update(
            HOME=str(home),
            PWD=str(root),
            PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
            DAGSTER_HOME=str(root / ".dagster_home"),
            DCCD_BINANCE_REST_URL=binance_origin,
            DCCD_BINANCE_WS_URL=binance_origin.replace("http://", "ws://", 1),
            HTTP_PROXY=f"http://{DEAD_ORIGIN}",
            HTTPS_PROXY=f"http://{DEAD_ORIGIN}",
            ALL_PROXY=f"http://{DEAD_ORIGIN}",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        for exchange in OTHER_EXCHANGES:
            env[f"DCCD_{exchange.upper()}_REST_URL"] = f"http://{DEAD_ORIGIN}"
            env[f"DCCD_{exchange.upper()}_WS_URL"] = f"ws://{DEAD_ORIGIN}"
        return cls(root, home, scratch, env, bin_dir)

    @property
    def lake(self) -> Path:
        return self.root / "data"

    def _run(
        self, argv: list[str], timeout_s: float, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run in the project folder, in a session of its own (killed whole on timeout)."""
        env = {**self.env, **(extra_env or {})}
        with subprocess.Popen(
            argv,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                out, err = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                err += f"\n[docs test: killed after {timeout_s:.0f} s]"
            return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    @staticmethod
    def _with_registry(command: str) -> str:
        """A documented ``pip install`` reaches the package registry as the README's
        set-up did: in a subshell without the dead-port proxies (and with this machine's
        own, if any). Nothing else escapes the loopback trap."""
        if not _PIP_INSTALL.search(command):
            return command
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "NO_PROXY", "no_proxy")
        restore = [f"export {n}={shlex.quote(os.environ[n])}" for n in names if n in os.environ]
        return "( " + "; ".join([f"unset {' '.join(names)}", *restore, command]) + " )"

    def run_bash(
        self, block: Block, commands: list[str], timeout_s: float = 180
    ) -> list[CommandResult]:
        """Run ``commands`` (of ``block``) in one shell, in order; one result per command."""
        out_dir = self.scratch / f"{block.doc.replace('/', '_')}-{block.line}"
        out_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"__out={shlex.quote(str(out_dir))}"]
        ran = [self._with_registry(rewrite_command(c, self.bin_dir)) for c in commands]
        for k, command in enumerate(ran):
            lines += [
                "__t0=$EPOCHREALTIME",
                "{ " + command,
                f'}} >"$__out/{k}.out" 2>"$__out/{k}.err" </dev/null',
                f'echo "$? $__t0 $EPOCHREALTIME" >"$__out/{k}.rc"',
            ]
        script = out_dir / "block.sh"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        shell = self._run(["bash", str(script)], timeout_s)
        results = []
        for k, (documented, command) in enumerate(zip(commands, ran, strict=True)):
            rc_file = out_dir / f"{k}.rc"
            if rc_file.exists():
                code, t0, t1 = rc_file.read_text().split()
                seconds = float(t1) - float(t0)
                stdout = (out_dir / f"{k}.out").read_text(errors="replace")
                stderr = (out_dir / f"{k}.err").read_text(errors="replace")
            else:  # the shell died or timed out before this line finished
                code, seconds = "-1", 0.0
                stdout, stderr = shell.stdout, shell.stderr
            results.append(
                CommandResult(block.where, documented, command, int(code), stdout, stderr, seconds)
            )
        return results

    def run_python(self, block: Block, timeout_s: float = 120) -> ProgramResult:
        """Run a python block as a program (see ``doc_program.py``)."""
        stem = f"{block.doc.replace('/', '_').replace('.', '_')}_{block.line}"
        program = self.scratch / f"{stem}.py"
        summary = self.scratch / f"{stem}.json"
        program.write_text(block.text, encoding="utf-8")
        t0 = time.monotonic()
        done = self._run(
            [str(self.bin_dir / "python"), str(_PROGRAM), str(program), str(summary)],
            timeout_s,
        )
        tables = json.loads(summary.read_text()) if summary.exists() else {}
        return ProgramResult(
            block.where,
            block.text,
            done.returncode,
            done.stdout,
            done.stderr,
            time.monotonic() - t0,
            tables,
        )

    def run_python_source(
        self, source: str, timeout_s: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a helper program (not from the docs) with the project's interpreter."""
        return self._run([str(self.bin_dir / "python"), "-c", source], timeout_s)
