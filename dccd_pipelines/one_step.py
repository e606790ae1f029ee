"""The executor of dccd's dataset jobs: Dagster's ``multi_or_in_process_executor``, except
that a run with a single step to execute runs it in process.

Why: a dataset run is one step (the asset and its checks share one op; a partition
range is one run, ``BackfillPolicy.single_run``). The multiprocess executor would
start a child interpreter for it, which imports Dagster and dccd and loads the
definitions again before the step starts: ~2 s of a year of 1m candles through
``dagster asset materialize`` (bench/README.md, "Dagster overhead"), for nothing to
run in parallel. Several steps (a selection of assets, a derived dataset and its
checks op) keep the multiprocess executor and its parallelism. The in-process path is
Dagster's own ``InProcessExecutor`` (the stream jobs use it too): the run's pools, the
op retries and termination behave as in any in-process run. ``execution: {config:
{in_process: {}}}`` or ``{multiprocess: ...}`` in the run config still choose as before,
except that a one-step plan never pays for a child process.
"""

from __future__ import annotations

from collections.abc import Iterator

from dagster import DagsterEvent, ExecutorDefinition
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.executor.multiprocess import MultiprocessExecutor

from .executor_wrap import WrappedExecutor, wrap_executor

__all__ = ["one_step_in_process"]


class _OneStepInProcess(WrappedExecutor):
    """``inner``, or Dagster's in-process executor when the plan has one step to run."""

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:  # type: ignore[no-untyped-def]
        inner = self._inner
        one_step = len(execution_plan.step_keys_to_execute) == 1
        if isinstance(inner, MultiprocessExecutor) and one_step:
            inner = InProcessExecutor(
                retries=inner.retries, step_dependency_config=inner.step_dependency_config
            )
        yield from inner.execute(plan_context, execution_plan)


def one_step_in_process(inner: ExecutorDefinition) -> ExecutorDefinition:
    """``inner`` (same name, config and requirements), running one-step plans in process."""
    return wrap_executor(inner, _OneStepInProcess)
