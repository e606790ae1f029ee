"""The streamer: turns parsed WebSocket events into buffered rows, healing gaps from REST.

Gaps are healed from REST *before* the stream goes on: at start from the last stored
row, after every reconnect from the last row seen, and where trade ids are consecutive
at any id jump inside the stream. Its own module: this is the event handling, apart
from the loop that reads frames (``stream.__init__``), the book upkeep (``books``) and
the flush (``flush``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import polars as pl

from dccd_core.domain import (
    NS_PER_S,
    STREAM_ONLY,
    DatasetKey,
    DataType,
    DccdError,
    NoCapability,
    Span,
    Symbol,
    UnexpectedPayload,
    check_rows,
    now_ns,
)
from dccd_core.sources.base import Source
from dccd_core.sources.ws import (
    WsBook,
    WsCandles,
    WsEvent,
    WsIgnore,
    WsLiquidations,
    WsSource,
    WsSubscription,
    WsTrades,
)
from dccd_core.transport.ws import Connected, WsClient

from ..book import LiveBook
from ..heal import fetch_candles_window, fetch_trades_window
from .books import BookUpkeep
from .flush import Flushing, Taken
from .state import StreamStore, SymbolState
from .stream_only import StreamOnly

__all__ = ["Streamer"]

log = logging.getLogger("dccd.stream")


class Streamer(BookUpkeep, StreamOnly, Flushing):
    """One stream's state between frames: per-symbol buffers, heals, books, counters."""

    def __init__(
        self,
        source: Source,
        sub: WsSubscription,
        store: StreamStore,
        *,
        max_heal_s: float,
    ) -> None:
        if not isinstance(source, WsSource):
            raise NoCapability(f"{source.id} has no WebSocket support in dccd")
        self.source = source
        self.ws: WsSource = source
        self.sub = sub
        self.store = store
        self.max_heal_ns = int(max_heal_s * NS_PER_S)
        self.states: dict[Symbol, SymbolState] = {
            s: SymbolState(DatasetKey(source.id, s, sub.data_type, sub.span)) for s in sub.symbols
        }
        max_depth = sub.book_depth if self.ws.book_protocol.truncate_to_depth else None
        for state in self.states.values():
            if sub.data_type is DataType.BOOK:
                state.book = LiveBook(self.ws, max_depth=max_depth)
            else:
                state.last_ts = store.last_ts(state.key)
        self.sequential = source.sequential_trade_ids or self.ws.ws_sequential_trade_ids
        self.flushes = 0
        self.total_rows = 0
        self.provenance = {**source.describe(), "transport": "ws"}
        self.client: WsClient | None = None
        self.started = time.monotonic()
        self.messages = 0
        self.last_message_at: float | None = None  # time.monotonic()

    def take(self) -> Taken:
        """Detach the buffers for a write; a stream-only type's coverage first grows to
        now while connected (``StreamOnly``), since no REST heal will ever fill it."""
        if self.sub.data_type in STREAM_ONLY:
            self.extend_watched()
        return super().take()

    async def on_connected(self, marker: Connected) -> None:
        log.info(
            "%s %s connected (session %d, reconnects %d) %s",
            self.source.id,
            self.sub.data_type,
            marker.session,
            marker.reconnects,
            marker.reason,
        )
        for symbol, state in self.states.items():
            if state.book is not None:
                state.book.synced = False
                state.book.last_seq = None
                state.pending.clear()
                continue
            if self.sub.data_type in STREAM_ONLY:  # nothing to heal from: record the gap
                self.open_unhealable(symbol, state, marker)
                continue
            await self.heal_to_now(symbol, state)

    async def heal_to_now(self, symbol: Symbol, state: SymbolState) -> None:
        now = now_ns()
        state.reheal_from = now
        if state.last_ts is None:
            state.cov_start = now
            return
        start = max(state.last_ts, now - self.max_heal_ns)
        if self.sub.data_type is DataType.OHLC:
            span = self._span()
            start = max(state.last_ts + span.ns, span.floor(now - self.max_heal_ns))
            await self.heal(symbol, state, start, span.floor(now))
        else:
            await self.heal(symbol, state, start, now + 1)

    def _span(self) -> Span:
        assert self.sub.span is not None
        return self.sub.span

    async def heal(self, symbol: Symbol, state: SymbolState, start_ts: int, end_ts: int) -> None:
        """Fetch ``[start_ts, end_ts)`` from REST into the buffer; count the heal."""
        if end_ts <= start_ts:
            return
        try:
            if self.sub.data_type is DataType.OHLC:
                rows, _ = await fetch_candles_window(
                    self.source, symbol, self._span(), start_ts, end_ts
                )
            else:
                rows, _ = await fetch_trades_window(self.source, symbol, start_ts, end_ts)
        except DccdError as exc:
            log.warning(
                "%s %s: could not heal %d..%d from REST: %s",
                self.source.id,
                symbol,
                start_ts,
                end_ts,
                exc,
            )
            self._coverage_break(state, start_ts, end_ts)
            state.report = replace(state.report, unhealed_gaps=state.report.unhealed_gaps + 1)
            return
        n = rows.height if rows is not None else 0
        state.report = replace(
            state.report,
            healed_gaps=state.report.healed_gaps + 1,
            healed_rows=state.report.healed_rows + n,
        )
        if state.cov_start is None:
            state.cov_start = start_ts
        if rows is not None and n:
            state.frames.append(rows)
            last = int(rows.get_column("ts").max())  # type: ignore[arg-type]
            state.last_ts = max(state.last_ts or last, last)
            if self.sequential and self.sub.data_type is DataType.TRADES:
                top = int(rows.get_column("trade_id").cast(pl.Int64).max())  # type: ignore[arg-type]
                state.last_id = max(state.last_id or top, top)
        if self.sub.data_type is not DataType.OHLC:
            state.cov_end = max(state.cov_end or end_ts, end_ts - 1)

    def _coverage_break(self, state: SymbolState, start_ts: int, end_ts: int) -> None:
        """An unhealed hole: coverage must not span it."""
        if state.cov_start is not None and state.cov_start < start_ts:
            self._record_coverage(state.key, state.cov_start, start_ts)
        state.cov_start = end_ts
        state.cov_end = None

    async def on_trades(self, event: WsTrades) -> None:
        state = self.states.get(event.symbol)
        rows = event.rows
        if state is None or rows.height == 0:
            return
        if state.reheal_from is not None:
            # The exchange may start a subscription a moment after the connect-time
            # heal ended; trades in between have no id gap to reveal them (most
            # exchanges' ids are not consecutive), so heal up to this first frame.
            first_ts = int(rows.get_column("ts").min())  # type: ignore[arg-type]
            reheal_from, state.reheal_from = state.reheal_from, None
            await self.heal(event.symbol, state, reheal_from, first_ts + 1)
        if state.cov_start is None:
            state.cov_start = int(rows.item(0, "ts"))
        if self.sequential:
            ids = rows.get_column("trade_id").cast(pl.Int64)
            if state.last_id is not None:
                fresh = ids > state.last_id
                if not fresh.all():
                    rows = rows.filter(fresh)
                    ids = ids.filter(fresh)
                    if rows.height == 0:
                        return
                chain, first = pl.concat([pl.Series([state.last_id], dtype=pl.Int64), ids]), 0
            else:
                # The symbol's first batch: no id before it, but ids missing *inside* it
                # are gaps all the same (a batch holds every frame since the last flush).
                chain, first = ids, 1
            jumps = (chain.diff().slice(1) > 1).arg_true().to_list()
            ts = rows.get_column("ts")
            for jump in jumps:
                i = jump + first  # the row after the gap
                lo = state.last_ts if i == 0 else int(ts[i - 1])
                if lo is None:
                    continue
                await self.heal(event.symbol, state, lo, int(ts[i]) + 1)
            state.last_id = max(state.last_id or 0, int(ids.max()))  # type: ignore[arg-type]
        state.frames.append(rows)
        last = int(rows.get_column("ts").max())  # type: ignore[arg-type]
        state.last_ts = max(state.last_ts or last, last)
        state.cov_end = max(state.cov_end or last, last)

    async def on_candles(self, event: WsCandles) -> None:
        state = self.states.get(event.symbol)
        if state is None or event.span != self.sub.span:
            return
        closed = event.rows.filter(pl.col("closed")).drop("closed")
        if closed.height == 0:
            return
        span = self._span()
        closed = closed.sort("ts")
        first = int(closed.item(0, "ts"))
        # every missing bar, before the batch and inside it (a batch spans a whole flush
        # interval: a bar the exchange skipped is usually inside)
        bars = closed.get_column("ts").unique(maintain_order=True).to_list()
        prev = state.last_ts
        for ts in bars:
            if prev is not None and ts > prev + span.ns:
                await self.heal(event.symbol, state, prev + span.ns, ts)
            prev = ts if prev is None else max(prev, ts)
        if state.cov_start is None:
            state.cov_start = first
        state.frames.append(closed)
        last = int(closed.get_column("ts").max())  # type: ignore[arg-type]
        state.last_ts = max(state.last_ts or last, last)
        state.cov_end = max(state.cov_end or 0, last + span.ns - 1)

    async def dispatch(self, events: Sequence[WsEvent]) -> None:
        data = sum(
            e.rows.height if isinstance(e, WsTrades | WsCandles | WsLiquidations) else 1
            for e in events
            if not isinstance(e, WsIgnore)
        )
        if data:
            self.messages += data
            arrived = self.client.last_frame_at if self.client is not None else None
            self.last_message_at = arrived if arrived is not None else time.monotonic()
        for event in _merged(events):
            if isinstance(event, WsTrades | WsCandles | WsLiquidations) and not (
                await self._plausible(event)
            ):
                continue
            if isinstance(event, WsTrades):
                await self.on_trades(event)
            elif isinstance(event, WsCandles):
                await self.on_candles(event)
            elif isinstance(event, WsBook):
                await self.on_book(event)
            elif isinstance(event, WsLiquidations):
                await self.on_liquidations(event)

    async def _plausible(self, event: WsTrades | WsCandles | WsLiquidations) -> bool:
        """Refuse a frame with implausible values (same rule as REST pages); the rows it
        should have carried are then fetched from REST by the reconnect's heal (for a
        stream-only type, the reconnect records the gap instead)."""
        if isinstance(event, WsCandles):
            data_type, rows = DataType.OHLC, event.rows.drop("closed")
        elif isinstance(event, WsLiquidations):
            data_type, rows = DataType.LIQUIDATIONS, event.rows
        else:
            data_type, rows = DataType.TRADES, event.rows
        try:
            check_rows(rows, data_type, origin=f"{self.source.id} websocket")
        except UnexpectedPayload as exc:
            log.warning("%s; reconnecting to heal it from REST", exc)
            if self.client is not None:
                await self.client.reconnect("implausible frame")
            return False
        return True


def _merged(events: Sequence[WsEvent]) -> list[WsEvent]:
    """The batch with each symbol's trades (and candles per span) in one event, in
    arrival order: the checks and the buffering then run once per symbol per batch, not
    once per frame, whichever way the source parses (most parse frame by frame).

    A stream carries one data type, so moving trades and candles after the other events
    (books, acks) changes no order that matters.
    """
    trades: dict[Symbol, list[pl.DataFrame]] = {}
    candles: dict[tuple[Symbol, Span], list[pl.DataFrame]] = {}
    out: list[WsEvent] = []
    for event in events:
        if isinstance(event, WsTrades):
            trades.setdefault(event.symbol, []).append(event.rows)
        elif isinstance(event, WsCandles):
            candles.setdefault((event.symbol, event.span), []).append(event.rows)
        else:
            out.append(event)
    for symbol, frames in trades.items():
        out.append(WsTrades(symbol, _concat(frames)))
    for (symbol, span), frames in candles.items():
        out.append(WsCandles(symbol, span, _concat(frames)))
    return out


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")
