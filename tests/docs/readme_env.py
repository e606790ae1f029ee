"""The environment a README reader has: a checkout and the README's own set-up command.

Issue 10: the docs' examples must run after the README's set-up (``python3 -m venv
.venv && .venv/bin/pip install -e .``), not in the developers' environment, which also
holds the ``dev`` extra (pytest, DuckDB, pandas, ...) and would hide a missing
dependency. ``make_readme_checkout`` copies the repository's files (tracked and new,
never ignored ones such as ``.venv`` or ``data/``) into a fresh folder, as a clone
would have them, and runs there the README's set-up steps, verbatim, with the
environment of a fresh shell: no ``PYTHONPATH``, no active virtualenv. Extras that the
docs name are installed by the docs' own commands, when the docs test reaches them.

The install comes from pip's configured sources and cache (PyPI or a local mirror);
it is done once per test session (the fixture in ``conftest.py``) and takes about a
minute on the reference 2-core machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.docs.doc_blocks import REPO, readme_main_command

__all__ = ["ReadmeCheckout", "clean_env", "make_readme_checkout", "setup_part"]

_SETUP_STEPS = ("python3 -m venv", "python -m venv", "pip install")


def setup_part(main_command: str) -> str:
    """The README main command's set-up steps (venv and install), verbatim."""
    steps = [s.strip() for s in main_command.split("&&")]
    setup = []
    for step in steps:
        if not any(marker in step for marker in _SETUP_STEPS):
            break
        setup.append(step)
    if not setup or not any("pip install" in step for step in setup):
        raise AssertionError(
            f"the README's main command does not start with a set-up: {main_command}"
        )
    return " && ".join(setup)


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's) as a fresh shell has it: no virtualenv active,
    no ``PYTHONPATH`` (the code must come from the install), no dccd/Dagster settings."""
    env = dict(os.environ if base is None else base)
    active = env.pop("VIRTUAL_ENV", None)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(name, None)
    hidden = {str(Path(p).resolve()) for p in (active,) if p}
    hidden.add(str(Path(sys.executable).parent.parent.resolve()))  # this test's own venv
    path = [
        p
        for p in env.get("PATH", "").split(os.pathsep)
        if p and str(Path(p).resolve().parent) not in hidden
    ]
    env["PATH"] = os.pathsep.join(path)
    return {k: v for k, v in env.items() if not k.startswith(("DCCD_", "DAGSTER_"))}


def _repo_files() -> list[str]:
    """Tracked and new (not ignored) files of the repository, as relative paths."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


@dataclass(frozen=True)
class ReadmeCheckout:
    """A copy of the repository with the README's ``.venv`` installed in it."""

    root: Path
    seconds: float  # what the README's set-up took here

    @property
    def bin(self) -> Path:
        return self.root / ".venv" / "bin"


def make_readme_checkout(base: Path, timeout_s: float = 900) -> ReadmeCheckout:
    """Copy the repository to ``base/checkout`` and run the README's set-up there."""
    root = base / "checkout"
    for name in _repo_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    command = setup_part(readme_main_command())
    t0 = time.monotonic()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=root,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise AssertionError(
            f"the README's set-up `{command}` failed ({done.returncode}) after {seconds:.0f} s\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    print(f"README set-up `{command}` took {seconds:.1f} s")
    return ReadmeCheckout(root, seconds)
