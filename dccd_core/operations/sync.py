"""Synchronous twins of the async verbs, for scripts, notebooks and the CLI.

Each verb is written once, async; its sync form is derived here with the same
signature (``ParamSpec``), so the two cannot drift apart and no argument list is
copied. ``run_sync`` also works where an event loop is already running (a notebook):
the coroutine then runs in a thread of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["run_sync", "sync_twin"]

P = ParamSpec("P")
T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, also where an event loop is already
    running (a notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def sync_twin(
    verb: Callable[P, Coroutine[Any, Any, T]],
    doc: str,
    *,
    runner: Callable[[Coroutine[Any, Any, T]], T] = run_sync,
) -> Callable[P, T]:
    """The blocking form of ``verb``: same parameters, run by ``runner``, ``doc`` as
    its docstring."""

    @functools.wraps(verb)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return runner(verb(*args, **kwargs))

    blocking.__doc__ = doc
    blocking.__name__ = blocking.__qualname__ = verb.__name__.removesuffix("_async")
    return blocking
