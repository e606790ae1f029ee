"""The stream's records: what it keeps per symbol, what it reports, how it says a
connection's state.

Its own module so the reports (read by the pipelines and the CLI) and the per-symbol
buffer can be read without the event handling and the loop around them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from dccd_core.domain import DatasetKey, DataType, Span, Symbol
from dccd_core.sources.ws import WsBook
from dccd_core.transport.ws import WsStatus

from ..book import LiveBook

__all__ = [
    "FlushReport",
    "StreamStore",
    "SymbolReport",
    "SymbolState",
    "describe_connection",
    "stream_label",
]


class StreamStore(Protocol):
    """What the stream needs from ``dccd_core.storage.Store``."""

    def write(
        self, key: DatasetKey, rows: pl.DataFrame, *, provenance: Mapping[str, str]
    ) -> object: ...

    def last_ts(self, key: DatasetKey) -> int | None: ...

    def record_coverage(self, key: DatasetKey, start: int, end: int) -> object: ...


@dataclass(frozen=True, slots=True)
class SymbolReport:
    """Per-symbol counters (cumulative except ``rows``)."""

    rows: int = 0
    total_rows: int = 0
    last_ts: int | None = None
    lag_s: float | None = None
    healed_gaps: int = 0
    healed_rows: int = 0
    unhealed_gaps: int = 0
    resyncs: int = 0


@dataclass(frozen=True, slots=True)
class FlushReport:
    """What one flush wrote, and the stream's health so far (cumulative counters)."""

    exchange: str
    data_type: DataType
    rows: int
    total_rows: int
    last_ts: int | None
    lag_s: float | None
    reconnects: int
    healed_gaps: int
    healed_rows: int
    unhealed_gaps: int
    resyncs: int
    flushes: int
    frames: int
    per_symbol: dict[str, SymbolReport]
    final: bool = False
    #: A WebSocket session is open right now.
    connected: bool = True
    #: Data messages received (trades, candles, book updates), all sessions together.
    messages: int = 0
    #: Seconds since the last data message; None: none ever came.
    last_message_age_s: float | None = None
    #: Seconds since the connection went down (or since the start, if never up).
    down_s: float | None = None
    last_error: str = ""
    #: Consecutive failed connection attempts (0 while connected).
    connect_attempts: int = 0
    retry_in_s: float | None = None
    #: Seconds since the stream started.
    elapsed_s: float = 0.0


@dataclass(slots=True)
class SymbolState:
    """Everything kept for one symbol between flushes."""

    key: DatasetKey
    frames: list[pl.DataFrame] = field(default_factory=list)
    last_ts: int | None = None
    last_id: int | None = None
    cov_start: int | None = None
    cov_end: int | None = None
    book: LiveBook | None = None
    pending: list[WsBook] = field(default_factory=list)
    last_snapshot_fetch: float = 0.0
    last_sample_ts: int | None = None
    #: Set at (re)connect to where the REST heal stopped: the subscription may start
    #: delivering only later, so the first frame of the session heals from here to it.
    reheal_from: int | None = None
    report: SymbolReport = field(default_factory=SymbolReport)
    #: A stream-only type's last reconnect gap starts here (its coverage ended here):
    #: a row of the new session at or after it reopens the coverage at the row.
    unwatched_from: int | None = None


def describe_connection(label: str, status: WsStatus) -> str:
    """One line on a connection change, e.g. ``binance trades BTC/USDT: not connected
    (last error: connection refused by ws://127.0.0.1:1/...; retrying in 2 s, 3 attempts)``."""
    if status.connected:
        return f"{label}: connected (session {status.sessions}, reconnects {status.reconnects})"
    retry = (
        f"retrying in {status.retry_in_s:.0f} s" if status.retry_in_s is not None else "retrying"
    )
    attempts = f"{status.attempts} attempt{'s' if status.attempts != 1 else ''}"
    error = status.last_error or "none yet"
    if status.event == "lost":
        return f"{label}: connection lost (last error: {error}); {retry}"
    down = f" for {status.down_s:.0f} s" if status.down_s is not None and status.down_s >= 1 else ""
    return f"{label}: not connected{down} (last error: {error}; {retry}, {attempts})"


def stream_label(
    exchange: str, data_type: DataType, span: Span | None, symbols: Sequence[Symbol]
) -> str:
    """``binance trades BTC/USDT, ETH/USDT``; long symbol lists are shortened."""
    names = [str(s) for s in symbols]
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
    kind = f"{data_type} {span}" if span is not None else str(data_type)
    return f"{exchange} {kind} {shown}"
