"""Polling for a state a set of Dagster processes reaches in its own time.

The fault tests drive real `dagster` processes: they can only poll for the outcome,
and a timeout must say what was awaited and show the processes' logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float,
             logs: Callable[[], str] = lambda: "", every_s: float = 0.25) -> T:
    """``probe()``'s first truthy value; AssertionError naming ``what`` with ``logs()``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{logs()}")
        time.sleep(every_s)
