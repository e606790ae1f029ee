"""The sign of life: the timeout knobs, the key-value record of each run's last beat,
and the executor wrapper that writes it while a run executes (see the package
docstring)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Collection, Mapping

from dagster import (
    DagsterInstance,
    Executor,
    ExecutorDefinition,
)

from dccd_core.domain import ConfigError

from ..executor_wrap import WrappedExecutor, wrap_executor

__all__ = [
    "ALIVE_PREFIX",
    "DEFAULT_TIMEOUT_S",
    "SENSOR_NAME",
    "TIMEOUT_ENV",
    "RunHeartbeat",
    "beat_interval_s",
    "env_seconds",
    "last_alive",
    "liveness_timeout_s",
    "sensor_interval_s",
    "with_liveness",
    "write_run_alive",
]

log = logging.getLogger(__name__)

TIMEOUT_ENV = "DCCD_RUN_LIVENESS_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 120.0
SENSOR_NAME = "dccd_dead_runs"
ALIVE_PREFIX = "dccd_run_alive:"


# -- knobs ------------------------------------------------------------------------------


def env_seconds(env: Mapping[str, str], name: str) -> float | None:
    """The env knob ``name`` as seconds > 0; None when unset or blank."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds > 0; fix or unset it")
    return value


def liveness_timeout_s(env: Mapping[str, str] | None = None) -> float:
    """``DCCD_RUN_LIVENESS_TIMEOUT_S`` (seconds > 0), default 120."""
    value = env_seconds(os.environ if env is None else env, TIMEOUT_ENV)
    return DEFAULT_TIMEOUT_S if value is None else value


def beat_interval_s(timeout_s: float) -> float:
    """How often a run writes its sign of life: four beats per timeout, at most 15 s."""
    return max(0.2, min(15.0, timeout_s / 4))


def sensor_interval_s(timeout_s: float) -> int:
    """How often ``dccd_dead_runs`` ticks: four ticks per timeout, 1..30 s."""
    return max(1, min(30, round(timeout_s / 4)))


# -- the sign of life ---------------------------------------------------------------------


def write_run_alive(instance: DagsterInstance, run_id: str, now_s: float | None = None) -> None:
    """The run's sign of life (read by ``dccd_dead_runs`` and the stream sensors)."""
    now_s = time.time() if now_s is None else now_s
    instance.run_storage.set_cursor_values({ALIVE_PREFIX + run_id: repr(now_s)})


def last_alive(instance: DagsterInstance, run_ids: Collection[str]) -> dict[str, float]:
    """The last sign of life of each run that wrote one (unix seconds)."""
    if not run_ids:
        return {}
    values = instance.run_storage.get_cursor_values({ALIVE_PREFIX + r for r in run_ids})
    out = {}
    for key, value in values.items():
        with contextlib.suppress(ValueError):
            out[key[len(ALIVE_PREFIX):]] = float(value)
    return out


class RunHeartbeat:
    """A daemon thread writing the run's sign of life every ``interval_s`` while the
    ``with`` block runs, plus once more when it ends (the run is still STARTED for a
    moment after its executor returns; a fresh beat keeps it from looking dead)."""

    def __init__(self, instance: DagsterInstance, run_id: str, interval_s: float) -> None:
        self._instance = instance
        self._run_id = run_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"dccd-alive-{run_id[:8]}",
                                        daemon=True)
        self._warned = False

    def _beat(self) -> None:
        try:
            write_run_alive(self._instance, self._run_id)
        except Exception as exc:  # a busy SQLite must not fail the run; the next beat retries
            if not self._warned:
                self._warned = True
                log.warning(f"dccd: could not write the run's sign of life ({exc}); retrying")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._beat()

    def __enter__(self) -> RunHeartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._beat()


class _LivenessExecutor(WrappedExecutor):
    """Any executor, with the run's sign of life written while it executes."""

    def __init__(self, inner: Executor, interval_s: float) -> None:
        super().__init__(inner)
        self._interval_s = interval_s

    def execute(self, plan_context, execution_plan):  # type: ignore[no-untyped-def]
        with RunHeartbeat(plan_context.instance, plan_context.run_id, self._interval_s):
            yield from self._inner.execute(plan_context, execution_plan)


def with_liveness(inner: ExecutorDefinition, timeout_s: float | None = None) -> ExecutorDefinition:
    """``inner`` (same name, config and requirements) writing the run's sign of life."""
    interval_s = beat_interval_s(liveness_timeout_s() if timeout_s is None else timeout_s)

    def with_liveness_executor(executor: Executor) -> Executor:
        return _LivenessExecutor(executor, interval_s)

    return wrap_executor(inner, with_liveness_executor)
