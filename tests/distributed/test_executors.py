"""``DCCD_EXECUTOR`` picks where steps run; a mistake in it is one clear error when the
definitions load, before any run."""

from __future__ import annotations

import pytest

from dccd_core.domain import ConfigError
from dccd_pipelines.executors import DASK_SCHEDULER_ENV, EXECUTOR_ENV, run_executor


def test_default_is_the_multiprocess_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert run_executor(60).name == "multi_or_in_process_executor"


def test_dask_on_the_named_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dagster_dask")
    monkeypatch.setenv(EXECUTOR_ENV, "dask")
    monkeypatch.setenv(DASK_SCHEDULER_ENV, "tcp://10.0.0.5:8786")
    assert run_executor(60).name == "dask"


def test_dask_without_a_scheduler_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXECUTOR_ENV, "dask")
    monkeypatch.delenv(DASK_SCHEDULER_ENV, raising=False)
    with pytest.raises(ConfigError, match="DCCD_DASK_SCHEDULER=tcp://"):
        run_executor(60)


def test_an_unknown_executor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    with pytest.raises(ConfigError, match=r"multiprocess .*or dask"):
        run_executor(60)
