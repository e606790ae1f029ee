"""The code stays ruff-clean and mypy-clean (strict where pyproject says: domain,
transport, sources and storage)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "mypy"), "--no-incremental", "dccd_core", "dccd_pipelines", "dccd_cli"],
    ],
    ids=["ruff", "mypy"],
)
def test_lint_is_clean(command: list[str]) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
