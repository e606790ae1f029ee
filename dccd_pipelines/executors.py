"""Where a run's steps execute: this machine's processes, or a Dask cluster's workers.

``DCCD_EXECUTOR`` picks the executor of every dccd job, read when the definitions load
(in the webserver, the daemon and every run process alike):

* unset or ``multiprocess``: Dagster's ``multi_or_in_process_executor``, one process
  per step on the machine of the run, except a one-step plan, which runs in the run's
  own process (``one_step``; the default, nothing to install);
* ``dask``: every step is a task on an existing ``dask.distributed`` cluster whose
  scheduler is ``DCCD_DASK_SCHEDULER`` (``tcp://host:8786``); the workers import the
  code location and open the instance from its reference, so they need the same code,
  catalog and environment (``DAGSTER_HOME`` with PostgreSQL storage) as the run. The
  submission is dccd's own (``DaskClusterExecutor``; dagster-dask's executor cannot
  hand a run to dask 2025+), the step itself runs by dagster-dask's worker function.

Either way the run writes its sign of life while it executes (``liveness``).
``dagster-dask`` is imported only for ``dask`` (``pip install 'dccd[deploy]'``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dagster import Executor, ExecutorDefinition, executor, multi_or_in_process_executor
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements
from dagster._core.execution.retries import RetryMode

from dccd_core.domain import ConfigError

from .liveness import liveness_timeout_s, with_liveness
from .one_step import one_step_in_process

__all__ = ["DASK_SCHEDULER_ENV", "EXECUTOR_ENV", "DaskClusterExecutor", "run_executor"]

EXECUTOR_ENV = "DCCD_EXECUTOR"
DASK_SCHEDULER_ENV = "DCCD_DASK_SCHEDULER"


def run_executor(timeout_s: float | None = None) -> ExecutorDefinition:
    """The executor ``DCCD_EXECUTOR`` names, writing the run's sign of life."""
    timeout_s = liveness_timeout_s() if timeout_s is None else timeout_s
    name = os.environ.get(EXECUTOR_ENV, "").strip().lower()
    if name in ("", "multiprocess"):
        # one-step runs (a dataset's, a partition range's) skip the child process
        return with_liveness(one_step_in_process(multi_or_in_process_executor), timeout_s)
    if name == "dask":
        return _dask_executor(timeout_s)
    raise ConfigError(
        f"{EXECUTOR_ENV}={name!r} is not an executor dccd knows: use multiprocess (the "
        "default) or dask (with DCCD_DASK_SCHEDULER=tcp://host:8786)"
    )


def _dask_executor(timeout_s: float) -> ExecutorDefinition:
    address = os.environ.get(DASK_SCHEDULER_ENV, "").strip()
    if not address:
        raise ConfigError(
            f"{EXECUTOR_ENV}=dask needs the cluster's scheduler: set {DASK_SCHEDULER_ENV}="
            "tcp://host:8786 (the address `dask scheduler` prints)"
        )
    try:
        import dagster_dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"{EXECUTOR_ENV}=dask needs dagster-dask: pip install 'dccd[deploy]'"
        ) from exc

    @executor(name="dask", requirements=multiple_process_executor_requirements())
    def dask_cluster(init_context: Any) -> Executor:
        return DaskClusterExecutor(address)

    return with_liveness(dask_cluster, timeout_s)


@dataclass(frozen=True)
class _StepCall:
    """What a worker needs to run one step, in one opaque object: dask walks tuples and
    lists among a task's arguments, and a ``DagsterRun`` (a tuple) holds records that
    refuse iteration (dagster-dask 0.29's own executor fails on this with dask 2025+)."""

    recon_job: Any
    run: Any
    run_config: Any
    step_key: str
    instance_ref: Any
    known_state: Any


def _run_step(dependencies: list[Any], call: _StepCall) -> Any:
    """On a worker: run one step (dagster-dask's worker function), after its inputs."""
    from dagster_dask.executor import query_on_dask_worker

    return query_on_dask_worker(
        dependencies, call.recon_job, call.run, call.run_config, [call.step_key],
        call.instance_ref, call.known_state,
    )


class DaskClusterExecutor(Executor):
    """Every step of the run a task on the Dask cluster at ``address``, submitted level by
    level with its upstream steps' futures as dependencies; the workers write the step
    events to the instance and return them to the run."""

    def __init__(self, address: str) -> None:
        self.address = address

    @property
    def retries(self) -> RetryMode:
        return RetryMode.DISABLED

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        from distributed import Client, as_completed

        if not plan_context.instance.is_persistent:
            raise ConfigError(
                "the Dask executor needs a persistent Dagster instance (DAGSTER_HOME with "
                "PostgreSQL storage, deploy/dagster.yaml) that every worker can open"
            )
        run = plan_context.dagster_run
        instance_ref = plan_context.instance.get_ref()
        futures: dict[str, Any] = {}
        with Client(self.address) as client:  # type: ignore[no-untyped-call]
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    upstream = [
                        futures[key] for step_input in step.step_inputs
                        for key in step_input.dependency_keys
                    ]
                    call = _StepCall(
                        plan_context.reconstructable_job, run, plan_context.run_config,
                        step.key, instance_ref, execution_plan.known_state,
                    )
                    futures[step.key] = client.submit(
                        _run_step, upstream, call,
                        key=f"{run.job_name}.{step.key}.{run.run_id}", pure=False,
                    )
            done = as_completed(list(futures.values()), with_results=True)  # type: ignore[no-untyped-call]
            for _future, events in done:
                yield from events
