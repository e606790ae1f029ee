"""The dataset jobs' executor: a one-step plan runs in process, several keep the
multiprocess executor (``dccd_pipelines.one_step``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.executor.multiprocess import MultiprocessExecutor

from dccd_pipelines.one_step import _OneStepInProcess


@pytest.mark.parametrize(("steps", "expected"), [(1, "in_process"), (2, "multiprocess")])
def test_one_step_plans_skip_the_child_process(
    monkeypatch: pytest.MonkeyPatch, steps: int, expected: str
) -> None:
    ran: list[str] = []

    def recorder(name: str) -> Any:
        def execute(self: Any, plan_context: Any, execution_plan: Any) -> Any:
            ran.append(name)
            yield from ()
        return execute

    monkeypatch.setattr(InProcessExecutor, "execute", recorder("in_process"))
    monkeypatch.setattr(MultiprocessExecutor, "execute", recorder("multiprocess"))
    inner = MultiprocessExecutor(max_concurrent=2, retries=RetryMode.DISABLED)
    plan = SimpleNamespace(step_keys_to_execute=[f"step_{i}" for i in range(steps)])
    list(_OneStepInProcess(inner).execute(None, plan))
    assert ran == [expected]


def test_an_in_process_run_config_stays_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(InProcessExecutor, "execute",
                        lambda self, c, p: iter(ran.append("in_process") or ()))
    plan = SimpleNamespace(step_keys_to_execute=["a", "b"])
    list(_OneStepInProcess(InProcessExecutor(retries=RetryMode.DISABLED)).execute(None, plan))
    assert ran == ["in_process"]
