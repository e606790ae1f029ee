"""Run liveness: every dccd run says it is alive; a run that stops saying so is failed.

Dagster's run monitoring cannot see a dead worker with the default run launcher (it has
no worker health check), so a run whose process died without a word (``kill -9``, out
of memory, a reboot) stays STARTED for good, and keeps its ``dccd_<exchange>`` pool
slots: with two such runs every later run on that exchange waits forever. Dagster's
``free_slots_after_run_end_seconds`` frees slots of *finished* runs only.

The mechanism, one for every dccd run (asset runs, update runs, stream runs):

* **the sign of life**: every dccd job runs under an executor wrapped by
  ``with_liveness``; while the run's orchestrating process executes, a thread writes
  ``dccd_run_alive:<run_id> = <unix time>`` into the instance's key-value store every
  ``timeout / 4`` seconds (at most 15 s) — from the first moment of execution, so also
  while the run waits for a pool slot. Stream runs write it from their watchdog too;
* **the judge**: the default-running sensor ``dccd_dead_runs`` (every ``timeout / 4``
  s, at most 30 s) looks at STARTED runs. A run whose last sign of life is older than
  the timeout, or a dccd run that has none ``timeout`` seconds after it started, is
  dead: it is marked failed with the reason (``report_run_failed``, failure reason
  ``UNEXPECTED_TERMINATION``) and its pool slots are freed
  (``free_concurrency_slots_for_run``), so the waiting runs on that exchange start at
  once. A finished dccd run still holding slots after the timeout (cancelled while its
  worker was gone) has them freed too;
* ``DCCD_RUN_LIVENESS_TIMEOUT_S`` (default 120) sets the timeout, read when the
  definitions load (code server and run workers alike). With the defaults a dead run
  is failed within ~150 s, well inside 5 minutes.

What this cannot see: a process alive but stuck (a deadlock) still beats; a run
whose orchestrator died while one of its step processes goes on is failed once the
orchestrator is silent (the orphan step may still finish its work). Clocks of the
run's host and of the sensor's host must agree to within a fraction of the timeout.
A run launched by a dccd older than this mechanism has no sign of life and is failed
``timeout`` seconds after it started: let such runs end before upgrading.

The package: ``beat`` (the sign of life and the executor writing it), ``judge`` (the
dead-run sensor and what it does).
"""

from __future__ import annotations

from .beat import (
    DEFAULT_TIMEOUT_S,
    SENSOR_NAME,
    TIMEOUT_ENV,
    RunHeartbeat,
    beat_interval_s,
    env_seconds,
    last_alive,
    liveness_timeout_s,
    sensor_interval_s,
    with_liveness,
    write_run_alive,
)
from .judge import (
    DeadRun,
    build_dead_run_sensor,
    dead_reason,
    fail_dead_run,
    fail_dead_runs,
    find_dead_runs,
    owned_by,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "SENSOR_NAME",
    "TIMEOUT_ENV",
    "DeadRun",
    "RunHeartbeat",
    "beat_interval_s",
    "build_dead_run_sensor",
    "dead_reason",
    "env_seconds",
    "fail_dead_run",
    "fail_dead_runs",
    "find_dead_runs",
    "last_alive",
    "liveness_timeout_s",
    "owned_by",
    "sensor_interval_s",
    "with_liveness",
    "write_run_alive",
]
