"""One way to wrap a Dagster executor: the sign-of-life writer (``liveness``) and the
one-step in-process choice (``one_step``) both run an inner executor with something
around it, and must stay transparent to everything else Dagster asks of it (retries,
step dependencies, concurrency limits) and keep the definition's name, config and
requirements, so a run config written for the inner executor still applies."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dagster import Executor, ExecutorDefinition, InitExecutorContext

__all__ = ["WrappedExecutor", "wrap_executor"]


class WrappedExecutor(Executor):
    """An executor delegating everything but ``execute`` to ``self._inner``."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self):  # type: ignore[no-untyped-def]  # RetryMode, private module
        return self._inner.retries

    @property
    def step_dependency_config(self):  # type: ignore[no-untyped-def]
        return self._inner.step_dependency_config

    def __getattr__(self, name: str) -> Any:  # e.g. max_concurrent, tag_concurrency_limits
        return getattr(self._inner, name)


def wrap_executor(
    inner: ExecutorDefinition, wrap: Callable[[Executor], Executor]
) -> ExecutorDefinition:
    """``inner`` (same name, config and requirements), each executor it creates wrapped."""
    create = inner.executor_creation_fn
    assert create is not None, f"executor {inner.name} has no creation function"

    def create_wrapped(init_context: InitExecutorContext) -> Executor:
        return wrap(create(init_context))

    # named after ``wrap``: a job's executor definition then says what wraps it
    functools.update_wrapper(
        create_wrapped, wrap, assigned=("__name__", "__qualname__"), updated=()
    )
    return ExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,  # type: ignore[arg-type]  # already converted
        requirements=inner.get_requirements,
        executor_creation_fn=create_wrapped,
        description=inner.description,
    )
