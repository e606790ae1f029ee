"""How the benchmarks measure a process's memory: its own peak RSS.

One module for every runner, dccd 3.8.1's included: ``peak_rss_mb`` needs only the
standard library, so ``peers/v3_runner.py`` (run by the peer venv's interpreter)
imports it too; ``peak_rss`` samples with psutil, imported when it is used.
"""

from __future__ import annotations

import resource
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["peak_rss", "peak_rss_mb"]


def peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM``, the high-water mark of its memory map.

    Not ``ru_maxrss``: Linux carries it across ``execve``, so a child started by a big
    parent would report the parent's peak (seen: every scenario "peaked" at the
    parent's 242 MB)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """Sample this process's RSS every 20 ms; ``out["mb"]`` is the peak."""
    import psutil

    proc = psutil.Process()
    out = {"mb": proc.memory_info().rss / 2**20}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            out["mb"] = max(out["mb"], proc.memory_info().rss / 2**20)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
