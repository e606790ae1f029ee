"""Live streams on Dagster: one sensor supervises one long-running run per stream.

A *stream* is (exchange, data type[, span]) with every catalog symbol that lists the
data type under ``stream:``; its run holds one WebSocket carrying all the symbols
(``dccd_core.operations.stream``), in the in-process executor.

Why a sensor and not a sensor-that-streams: a sensor tick is cut off at 60 s, and
stopping ``dagster dev`` leaves runs alive. So:

* each tick (``minimum_interval_seconds``) the sensor writes a heartbeat into the
  instance's key-value store, then asks the instance for runs of its stream (tag
  ``dccd/stream``) in a non-terminal state: one is active -> skip; none -> request one,
  after a backoff that doubles with each consecutive failed run (cap 10 min);
* the run writes its own sign of life every ``WATCH_INTERVAL_S``. A STARTED run silent
  for longer than the supervisor timeout is dead (its worker was killed: ``kill -9``,
  OOM, a reboot, ``dagster dev``'s process group killed). Dagster's run monitoring
  cannot see that with the default run launcher, so the run would stay STARTED forever
  and block its stream; the sensor marks it failed and requests a new run at once;
* stream runs carry ``dagster/max_retries: 0``: the sensor is their only restarter (an
  automatic re-execution as well would run the stream twice);
* the run watches its supervisor every ``WATCH_INTERVAL_S``: the sensor turned off
  (instigator state STOPPED) or no heartbeat for the supervisor timeout -> it sets the
  stream's stop event, which flushes and returns;
* terminating the run in the UI raises Dagster's interrupt inside the stream, whose
  ``finally`` flushes before the run ends;
* every flush with rows logs an ``AssetMaterialization`` on the dataset asset's day
  partition (rows, last ts, lag, reconnects, healed gaps, ``connected``,
  ``last_message_age_s``); a connection change is logged the moment it happens ("not
  connected (last error: ...; retrying in 2 s, 3 attempts)");
* a run never ends green having received nothing, nor after stopping while
  disconnected for over ``OUTAGE_FAIL_S`` (``stream_end_problem``);
* reloads: every sensor tick also publishes its catalog's streams (name -> spec
  fingerprint); a run whose stream changed stops so that the next tick restarts it with
  the new settings, one whose stream left the catalog stops saying so, and with no
  stream sensor left the run reads the catalog file for the reason (``stop_reason``);
* checks: the run evaluates the asset checks its datasets declare on the day
  partitions it writes (first flush, every ``DCCD_STREAM_CHECK_INTERVAL_S``, day close,
  stop), so the UI shows a check status per streamed day.

Three knobs, read from the environment when the definitions are built (the code server
and every run worker build them, so the sensor and the run agree), for deployments and
tests that need a faster supervisor; the defaults suit production:

* ``DCCD_STREAM_SENSOR_INTERVAL_S`` (default ``SENSOR_INTERVAL_S`` = 30): the sensor's
  ``minimum_interval_seconds`` (the daemon evaluates sensors at most every ~5 s);
* ``DCCD_STREAM_SUPERVISOR_TIMEOUT_S`` (default 4 x the sensor interval): how long a run
  goes on without a sensor tick before it stops by itself;
* ``DCCD_STREAM_CHECK_INTERVAL_S`` (default ``CHECK_INTERVAL_S`` = 900): how often a
  stream run evaluates its datasets' checks on the current day.

The package, by concern: ``spec`` (the stream and its names), ``supervision`` (what
the sensor and the run's watchdog decide), ``run`` (the op body), ``reports`` (a
flush as events and log lines), ``jobs`` (the job and the sensor).
"""

from __future__ import annotations

from .jobs import build_stream_definitions, build_stream_job, build_stream_sensor
from .reports import OUTAGE_FAIL_S, describe_flush, stream_end_problem
from .run import WATCH_INTERVAL_S, run_stream_body
from .spec import (
    CHECK_INTERVAL_ENV,
    CHECK_INTERVAL_S,
    HEARTBEAT_TIMEOUT_S,
    SENSOR_INTERVAL_ENV,
    SENSOR_INTERVAL_S,
    SPEC_TAG,
    STREAM_TAG,
    SUPERVISOR_TIMEOUT_ENV,
    StreamSpec,
    stream_specs,
)
from .supervision import (
    decide_stream_run,
    stop_reason,
    supervisor_gone,
    write_heartbeat,
    write_run_alive,
    write_stream_registry,
)

__all__ = [
    "CHECK_INTERVAL_ENV",
    "CHECK_INTERVAL_S",
    "HEARTBEAT_TIMEOUT_S",
    "OUTAGE_FAIL_S",
    "SENSOR_INTERVAL_ENV",
    "SENSOR_INTERVAL_S",
    "SPEC_TAG",
    "STREAM_TAG",
    "SUPERVISOR_TIMEOUT_ENV",
    "WATCH_INTERVAL_S",
    "StreamSpec",
    "build_stream_definitions",
    "build_stream_job",
    "build_stream_sensor",
    "decide_stream_run",
    "describe_flush",
    "run_stream_body",
    "stop_reason",
    "stream_end_problem",
    "stream_specs",
    "supervisor_gone",
    "write_heartbeat",
    "write_run_alive",
    "write_stream_registry",
]
