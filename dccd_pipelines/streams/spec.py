"""A stream as the catalog defines it: (exchange, data type[, span]) with its symbols
and settings, every name derived from them, and the supervision knobs read from the
environment (see the package docstring)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dccd_core.catalog import DatasetSpec
from dccd_core.domain import DatasetKey, DataType, Span, Symbol

from .. import liveness

__all__ = [
    "CHECK_INTERVAL_ENV",
    "CHECK_INTERVAL_S",
    "HEARTBEAT_TIMEOUT_S",
    "SENSOR_INTERVAL_ENV",
    "SENSOR_INTERVAL_S",
    "SPEC_TAG",
    "STREAM_TAG",
    "SUPERVISOR_TIMEOUT_ENV",
    "StreamSpec",
    "stream_specs",
]

STREAM_TAG = "dccd/stream"
#: The fingerprint of the spec a stream run was requested for (``StreamSpec.fingerprint``).
SPEC_TAG = "dccd/stream_spec"
SENSOR_INTERVAL_S = 30
#: No sensor tick for this long means the supervisor (the daemon) is gone.
HEARTBEAT_TIMEOUT_S = 4 * SENSOR_INTERVAL_S
SENSOR_INTERVAL_ENV = "DCCD_STREAM_SENSOR_INTERVAL_S"
SUPERVISOR_TIMEOUT_ENV = "DCCD_STREAM_SUPERVISOR_TIMEOUT_S"
CHECK_INTERVAL_ENV = "DCCD_STREAM_CHECK_INTERVAL_S"
#: The stream run evaluates its datasets' checks on the current day this often.
CHECK_INTERVAL_S = 900.0


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream: its symbols, settings and every name derived from them."""

    exchange: str
    data_type: DataType
    symbols: tuple[Symbol, ...]
    span: Span | None = None
    book_depth: int = 20
    snapshot_interval_s: float = 10.0
    rest_url: str | None = None
    ws_url: str | None = None
    sensor_interval_s: int = SENSOR_INTERVAL_S
    #: No sensor tick for this long: the run stops by itself (None: 4 sensor intervals).
    supervisor_timeout_s: float | None = None
    #: The catalog file the stream comes from ("": unknown); scopes the stream registry.
    catalog: str = ""
    #: How often the run evaluates the asset checks on the current day partition (they
    #: also run when a day closes and when the run stops).
    check_interval_s: float = CHECK_INTERVAL_S

    @property
    def fingerprint(self) -> str:
        """What the run streams (symbols, endpoints, book settings): a change in the
        catalog changes it, and the sensor's new runs carry the new one."""
        text = repr((
            self.name, tuple(str(s) for s in self.symbols), self.book_depth,
            self.snapshot_interval_s, self.rest_url, self.ws_url,
        ))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def heartbeat_timeout_s(self) -> float:
        if self.supervisor_timeout_s is not None:
            return self.supervisor_timeout_s
        return 4.0 * self.sensor_interval_s

    @property
    def name(self) -> str:
        """``binance__trades__stream``, ``binance__ohlc_1m__stream``."""
        kind = self.data_type.value + (f"_{self.span.label}" if self.span else "")
        return f"{self.exchange}__{kind}__stream"

    @property
    def sensor_name(self) -> str:
        return f"{self.name}_sensor"

    def key(self, symbol: Symbol) -> DatasetKey:
        return DatasetKey(self.exchange, symbol, self.data_type, self.span)


def stream_specs(
    datasets: Sequence[DatasetSpec], env: Mapping[str, str] | None = None
) -> list[StreamSpec]:
    """Group the catalog's streamed datasets by (exchange, data type, span).

    ``env`` (default ``os.environ``) may set the supervision knobs (module docstring).
    """
    env = os.environ if env is None else env
    interval_s = liveness.env_seconds(env, SENSOR_INTERVAL_ENV)
    timeout_s = liveness.env_seconds(env, SUPERVISOR_TIMEOUT_ENV)
    check_s = liveness.env_seconds(env, CHECK_INTERVAL_ENV) or CHECK_INTERVAL_S
    groups: dict[tuple[str, DataType, Span | None], list[DatasetSpec]] = {}
    for ds in datasets:
        if ds.stream:
            groups.setdefault((ds.key.exchange, ds.key.data_type, ds.key.span), []).append(ds)
    specs = []
    for (exchange, data_type, span), members in groups.items():
        first = members[0]
        specs.append(
            StreamSpec(
                exchange=exchange,
                data_type=data_type,
                symbols=tuple(dict.fromkeys(m.key.symbol for m in members)),
                span=span,
                book_depth=first.book_depth or 20,
                snapshot_interval_s=first.snapshot_interval_s or 10.0,
                rest_url=first.rest_url,
                ws_url=first.ws_url,
                sensor_interval_s=max(1, round(interval_s)) if interval_s else SENSOR_INTERVAL_S,
                supervisor_timeout_s=timeout_s,
                check_interval_s=check_s,
            )
        )
    return specs
