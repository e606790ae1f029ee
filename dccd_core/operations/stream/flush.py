"""Flushing a stream: detach the buffers, write them (in a worker thread), report.

Its own module because the write and the report are what a caller of ``stream`` sees
(every :class:`FlushReport` says whether the WebSocket is connected, since when it is
not, its last error and how long ago the last data message came), apart from how the
frames were turned into rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import polars as pl

from dccd_core.domain import (
    NS_PER_S,
    DatasetKey,
    DataType,
    DccdError,
    Symbol,
    natural_key,
    now_ns,
)
from dccd_core.sources.base import Source
from dccd_core.sources.ws import WsSubscription
from dccd_core.transport.ws import WsClient

from .state import FlushReport, StreamStore, SymbolReport, SymbolState

__all__ = ["Flushing", "Taken"]

log = logging.getLogger("dccd.stream")

#: Per symbol: the rows to write (None: none) and the coverage ``[start, end]`` to record.
Taken = dict[Symbol, tuple[pl.DataFrame | None, int | None, int | None]]


class Flushing:
    """The flush half of the streamer (mixed into ``Streamer``)."""

    source: Source
    sub: WsSubscription
    store: StreamStore
    states: dict[Symbol, SymbolState]
    client: WsClient | None
    provenance: dict[str, str]
    flushes: int
    total_rows: int
    started: float
    messages: int
    last_message_at: float | None

    def take(self) -> Taken:
        """Detach the buffers (new rows go to fresh ones) for a write."""
        taken: Taken = {}
        key_cols = list(natural_key(self.sub.data_type))
        for symbol, state in self.states.items():
            frame: pl.DataFrame | None = None
            if state.frames:
                frame = pl.concat(state.frames, how="vertical_relaxed")
                state.frames = []
                frame = frame.unique(subset=key_cols, keep="last", maintain_order=True).sort(
                    key_cols if self.sub.data_type is not DataType.TRADES else ["ts", "trade_id"]
                )
            cov = (state.cov_start, state.cov_end)
            if state.cov_end is not None:
                state.cov_start = state.cov_end
            taken[symbol] = (frame, *cov)
        return taken

    def write(self, taken: Taken) -> dict[Symbol, int]:
        """Blocking: write each symbol's rows and coverage (runs in a worker thread)."""
        written: dict[Symbol, int] = {}
        for symbol, (frame, cov_start, cov_end) in taken.items():
            key = self.states[symbol].key
            n = 0
            if frame is not None and frame.height:
                self.store.write(key, frame, provenance=self.provenance)
                n = frame.height
            if cov_start is not None and cov_end is not None and cov_end + 1 > cov_start:
                self._record_coverage(key, cov_start, cov_end + 1)
            written[symbol] = n
        return written

    def _record_coverage(self, key: DatasetKey, start: int, end: int) -> None:
        try:
            self.store.record_coverage(key, start, end)
        except DccdError as exc:  # coverage is advisory; the rows are what matter
            log.warning("%s: coverage not recorded: %s", key, exc)

    def report(self, written: dict[Symbol, int], *, final: bool) -> FlushReport:
        now = now_ns()
        per: dict[str, SymbolReport] = {}
        rows = 0
        for symbol, state in self.states.items():
            n = written.get(symbol, 0)
            rows += n
            book_resyncs = state.book.resyncs if state.book is not None else 0
            lag = (now - state.last_ts) / NS_PER_S if state.last_ts is not None else None
            state.report = replace(
                state.report,
                rows=n,
                total_rows=state.report.total_rows + n,
                last_ts=state.last_ts,
                lag_s=lag,
                resyncs=book_resyncs,
            )
            per[str(symbol)] = state.report
        self.total_rows += rows
        self.flushes += 1
        reports = list(per.values())
        mono = time.monotonic()
        status = self.client.status() if self.client is not None else None
        last_ts = max((r.last_ts for r in reports if r.last_ts is not None), default=None)
        return FlushReport(
            exchange=self.source.id,
            data_type=self.sub.data_type,
            rows=rows,
            total_rows=self.total_rows,
            last_ts=last_ts,
            lag_s=(now - last_ts) / NS_PER_S if last_ts is not None else None,
            reconnects=self.client.reconnects if self.client else 0,
            healed_gaps=sum(r.healed_gaps for r in reports),
            healed_rows=sum(r.healed_rows for r in reports),
            unhealed_gaps=sum(r.unhealed_gaps for r in reports),
            resyncs=sum(r.resyncs for r in reports),
            flushes=self.flushes,
            frames=self.client.frames if self.client else 0,
            per_symbol=per,
            final=final,
            connected=status.connected if status is not None else False,
            messages=self.messages,
            last_message_age_s=(
                mono - self.last_message_at if self.last_message_at is not None else None
            ),
            down_s=status.down_s if status is not None else mono - self.started,
            last_error=status.last_error if status is not None else "",
            connect_attempts=status.attempts if status is not None else 0,
            retry_in_s=status.retry_in_s if status is not None else None,
            elapsed_s=mono - self.started,
        )
