"""Peers to compare dccd v4 with: dccd 3.8.1 in a venv of its own.

Why a separate venv: dccd 3.8.1 and v4 are both the ``dccd`` distribution, with
different dependencies (pydantic, SQLAlchemy, scipy); the peer must never be a
dependency of the project. ``ensure_v3()`` creates ``bench/.venv-v3`` on first use
(``python3 -m venv`` + ``pip install dccd==3.8.1``, the only network access of the
benchmark) and returns its interpreter; ``v3_runner.py`` runs inside it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["RUNNER", "V3_VENV", "V3_VERSION", "ensure_v3"]

V3_VERSION = "3.8.1"
BENCH = Path(__file__).resolve().parents[1]
V3_VENV = BENCH / ".venv-v3"
RUNNER = Path(__file__).resolve().parent / "v3_runner.py"


def _installed(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-I", "-c", "import importlib.metadata as m; print(m.version('dccd'))"],
        capture_output=True, text=True, check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == V3_VERSION


def ensure_v3(log: object = print) -> Path:
    """The peer venv's python, created and filled with dccd 3.8.1 if needed."""
    python = V3_VENV / "bin" / "python"
    if _installed(python):
        return python
    base = shutil.which("python3") or sys.executable
    say = log if callable(log) else print
    say(f"creating {V3_VENV} with dccd=={V3_VERSION} from PyPI (first use only)")
    subprocess.run([base, "-m", "venv", str(V3_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"dccd=={V3_VERSION}"], check=True)
    if not _installed(python):
        raise RuntimeError(f"dccd=={V3_VERSION} is not importable in {V3_VENV} after install")
    return python
