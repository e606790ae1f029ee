"""``stream``: collect live trades, closed candles or book snapshots into the store.

One WebSocket connection per (exchange, data type) carries every symbol. Frames are
read in batches, parsed by the source into polars frames, buffered per symbol and
written through the store every ``flush_interval_s`` and on stop or cancel (the last
flush runs in ``finally``, so a stopped or interrupted run loses nothing it received).

Frames wait in the client, unparsed, until a flush (or a book sample) is due or
``_DISPATCH_FRAMES`` of them are pending, and are then parsed and checked in one batch.
An exchange sends a trade per frame, every few milliseconds; parsing each read on its
own paid the fixed cost of the columnar work (frame building, plausibility checks,
buffering) per handful of messages, ~20x the per-message cost. Waiting adds no latency
to durability: the rows were only going to be written at the flush anyway, and the
batch is parsed right before it. A reconnect is handled at once (its heal starts
immediately), and an idle stream wakes only for its flush timer and the stop check.

Gaps are healed from REST *before* the stream goes on:

* at start, from the last stored row; after every reconnect, from the last row seen
  (trades by time window through ``fetch_trades_page``, closed candles through
  ``fetch_candles``);
* where trade ids are consecutive (``Source.sequential_trade_ids``, Binance aggTrades),
  any id jump inside the stream (a frame the exchange skipped) is healed too.

Duplicates between REST and WS are dropped on the natural key before the write (and
the store merges on it again). Books are kept from snapshot + deltas with the source's
sequence/checksum rules (``dccd_core.operations.book``) and sampled every
``snapshot_interval_s``; a gap, checksum mismatch or crossed book triggers a resync and
is never stored.

Health is reported, never implied: every :class:`FlushReport` says whether the
WebSocket is connected, since when it is not, its last error and how long ago the last
data message came (``None``: never); ``on_status`` hears a one-line account of every
connection change the moment it happens (``describe_connection``), so an offline or
misconfigured stream says "not connected (last error: ...)" at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import polars as pl

from dccd_core.domain import (
    NS_PER_S,
    DatasetKey,
    DataType,
    DccdError,
    NoCapability,
    Span,
    Symbol,
    Transport,
    UnexpectedPayload,
    check_rows,
    now_ns,
)
from dccd_core.sources.base import Source
from dccd_core.sources.ws import (
    BookSync,
    WsBook,
    WsCandles,
    WsEvent,
    WsIgnore,
    WsSource,
    WsSubscription,
    WsTrades,
)
from dccd_core.transport.ws import Connected, WsClient, WsConfig, WsStatus

from .book import LiveBook, book_frame
from .heal import fetch_candles_window, fetch_trades_window

__all__ = ["FlushReport", "StreamStore", "SymbolReport", "describe_connection", "stream"]

log = logging.getLogger("dccd.stream")

#: Older gaps than this are left to a backfill (the store's coverage shows them).
DEFAULT_MAX_HEAL_S = 6 * 3600.0
_SNAPSHOT_RETRY_S = 1.0
_MAX_PENDING_DELTAS = 50_000
#: Parse as soon as this many frames wait, flush due or not: bounds the memory held as
#: raw frames and the parsing left to do when the flush comes (~50 ms of work).
_DISPATCH_FRAMES = 5_000
#: The longest the loop sleeps without looking at ``stop``.
_STOP_POLL_S = 0.25


class StreamStore(Protocol):
    """What the stream needs from ``dccd_core.storage.Store``."""

    def write(
        self, key: DatasetKey, rows: pl.DataFrame, *, provenance: Mapping[str, str]
    ) -> Any: ...

    def last_ts(self, key: DatasetKey) -> int | None: ...

    def record_coverage(self, key: DatasetKey, start: int, end: int) -> Any: ...


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
class _State:
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


class _Streamer:
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
        self.states: dict[Symbol, _State] = {
            s: _State(DatasetKey(source.id, s, sub.data_type, sub.span)) for s in sub.symbols
        }
        max_depth = sub.book_depth if self.ws.book_protocol.truncate_to_depth else None
        for state in self.states.values():
            if sub.data_type is DataType.BOOK:
                state.book = LiveBook(self.ws, max_depth=max_depth)
            else:
                state.last_ts = store.last_ts(state.key)
        self.sequential = bool(
            getattr(source, "sequential_trade_ids", False) or self.ws.ws_sequential_trade_ids
        )
        self.flushes = 0
        self.total_rows = 0
        self.provenance = {**source.describe(), "transport": "ws"}
        self.client: WsClient | None = None
        self.started = time.monotonic()
        self.messages = 0
        self.last_message_at: float | None = None  # time.monotonic()

    # -- events -------------------------------------------------------------------------

    async def on_connected(self, marker: Connected) -> None:
        log.info("%s %s connected (session %d, reconnects %d) %s", self.source.id,
                 self.sub.data_type, marker.session, marker.reconnects, marker.reason)
        for symbol, state in self.states.items():
            if state.book is not None:
                state.book.synced = False
                state.book.last_seq = None
                state.pending.clear()
                continue
            await self.heal_to_now(symbol, state)

    async def heal_to_now(self, symbol: Symbol, state: _State) -> None:
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

    async def heal(self, symbol: Symbol, state: _State, start_ts: int, end_ts: int) -> None:
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
            log.warning("%s %s: could not heal %d..%d from REST: %s",
                        self.source.id, symbol, start_ts, end_ts, exc)
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

    def _coverage_break(self, state: _State, start_ts: int, end_ts: int) -> None:
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

    async def on_book(self, event: WsBook) -> None:
        state = self.states.get(event.symbol)
        if state is None or state.book is None:
            return
        book = state.book
        protocol = self.ws.book_protocol
        if event.snapshot or book.synced:
            if not book.apply(event):
                await self._resync(event.symbol, state)
            return
        # unsynced delta
        if protocol.sync is not BookSync.REST_SNAPSHOT:
            return
        if len(state.pending) < _MAX_PENDING_DELTAS:
            state.pending.append(event)
        if time.monotonic() - state.last_snapshot_fetch < _SNAPSHOT_RETRY_S:
            return
        state.last_snapshot_fetch = time.monotonic()
        try:
            snapshot = await self.ws.fetch_ws_book_snapshot(
                event.symbol, max(self.sub.book_depth, 1000)
            )
        except DccdError as exc:
            log.warning("%s %s: book snapshot failed: %s", self.source.id, event.symbol, exc)
            return
        book.apply(snapshot)
        pending, state.pending = state.pending, []
        for delta in pending:
            if not book.apply(delta):
                log.info("%s %s: book resync (%s)", self.source.id, event.symbol,
                         book.last_problem)
                return

    async def _resync(self, symbol: Symbol, state: _State) -> None:
        assert state.book is not None
        log.info("%s %s: book resync (%s)", self.source.id, symbol, state.book.last_problem)
        state.pending.clear()
        state.last_snapshot_fetch = 0.0
        if self.ws.book_protocol.resubscribe_on_gap and self.client is not None:
            await self.client.reconnect(f"book resync: {state.book.last_problem}")

    async def sample_books(self) -> None:
        for symbol, state in self.states.items():
            book = state.book
            if book is None or not book.synced:
                continue
            if book.crossed():
                book.reset("crossed book (best bid >= best ask)")
                await self._resync(symbol, state)
                continue
            if book.last_ts == state.last_sample_ts:
                continue
            bids, asks = book.top(self.sub.book_depth)
            if not bids or not asks:
                continue
            state.last_sample_ts = book.last_ts
            state.frames.append(book_frame(book.last_ts, bids, asks))
            state.last_ts = book.last_ts
            if state.cov_start is None:
                state.cov_start = book.last_ts
            state.cov_end = book.last_ts

    async def dispatch(self, events: Sequence[WsEvent]) -> None:
        data = sum(
            e.rows.height if isinstance(e, WsTrades | WsCandles) else 1
            for e in events
            if not isinstance(e, WsIgnore)
        )
        if data:
            self.messages += data
            arrived = self.client.last_frame_at if self.client is not None else None
            self.last_message_at = arrived if arrived is not None else time.monotonic()
        for event in _merged(events):
            if isinstance(event, WsTrades | WsCandles) and not await self._plausible(event):
                continue
            if isinstance(event, WsTrades):
                await self.on_trades(event)
            elif isinstance(event, WsCandles):
                await self.on_candles(event)
            elif isinstance(event, WsBook):
                await self.on_book(event)

    async def _plausible(self, event: WsTrades | WsCandles) -> bool:
        """Refuse a frame with implausible values (same rule as REST pages); the rows it
        should have carried are then fetched from REST by the reconnect's heal."""
        data_type = DataType.TRADES if isinstance(event, WsTrades) else DataType.OHLC
        rows = event.rows if data_type is DataType.TRADES else event.rows.drop("closed")
        try:
            check_rows(rows, data_type, origin=f"{self.source.id} websocket")
        except UnexpectedPayload as exc:
            log.warning("%s; reconnecting to heal it from REST", exc)
            if self.client is not None:
                await self.client.reconnect("implausible frame")
            return False
        return True

    # -- flushing -----------------------------------------------------------------------

    def take(self) -> dict[Symbol, tuple[pl.DataFrame | None, int | None, int | None]]:
        """Detach the buffers (new rows go to fresh ones) for a write."""
        taken: dict[Symbol, tuple[pl.DataFrame | None, int | None, int | None]] = {}
        key_cols = {
            DataType.TRADES: ["trade_id"],
            DataType.OHLC: ["ts"],
            DataType.BOOK: ["ts", "side", "level"],
        }[self.sub.data_type]
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

    def write(
        self, taken: dict[Symbol, tuple[pl.DataFrame | None, int | None, int | None]]
    ) -> dict[Symbol, int]:
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


def describe_connection(label: str, status: WsStatus) -> str:
    """One line on a connection change, e.g. ``binance trades BTC/USDT: not connected
    (last error: connection refused by ws://127.0.0.1:1/...; retrying in 2 s, 3 attempts)``."""
    if status.connected:
        return (
            f"{label}: connected (session {status.sessions}, reconnects {status.reconnects})"
        )
    retry = (
        f"retrying in {status.retry_in_s:.0f} s" if status.retry_in_s is not None else "retrying"
    )
    attempts = f"{status.attempts} attempt{'s' if status.attempts != 1 else ''}"
    error = status.last_error or "none yet"
    if status.event == "lost":
        return f"{label}: connection lost (last error: {error}); {retry}"
    down = f" for {status.down_s:.0f} s" if status.down_s is not None and status.down_s >= 1 else ""
    return f"{label}: not connected{down} (last error: {error}; {retry}, {attempts})"


def _label(exchange: str, data_type: DataType, span: Span | None, symbols: Sequence[Symbol]) -> str:
    """``binance trades BTC/USDT, ETH/USDT``; long symbol lists are shortened."""
    names = [str(s) for s in symbols]
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
    kind = f"{data_type} {span}" if span is not None else str(data_type)
    return f"{exchange} {kind} {shown}"


async def stream(
    exchange: str,
    symbols: Sequence[str | Symbol],
    data_type: str | DataType,
    *,
    store: StreamStore,
    span: str | Span | None = None,
    source: Source | None = None,
    flush_interval_s: float = 5.0,
    book_depth: int = 20,
    snapshot_interval_s: float = 10.0,
    stop: asyncio.Event | None = None,
    on_flush: Callable[[FlushReport], None] | None = None,
    max_runtime_s: float | None = None,
    max_heal_s: float = DEFAULT_MAX_HEAL_S,
    ws_config: WsConfig | None = None,
    rest_url: str | None = None,
    ws_url: str | None = None,
    on_status: Callable[[str, WsStatus], None] | None = None,
) -> FlushReport:
    """Stream ``data_type`` of ``symbols`` into ``store`` until ``stop`` is set.

    Returns the final :class:`FlushReport`; ``on_flush`` gets one after every flush,
    ``on_status`` a line (``describe_connection``) and the state at every connection
    change (without it, those lines go to the ``dccd.stream`` logger).
    ``span`` is required for ``ohlc`` (closed candles only are stored). Stops on
    ``stop``, after ``max_runtime_s``, or on cancellation — always after a last flush.
    Raises ``NoCapability`` before connecting when the source cannot stream this.
    """
    dt = DataType.parse(data_type)
    syms = tuple(s if isinstance(s, Symbol) else Symbol.parse(s) for s in symbols)
    sp = Span.parse(span) if span is not None else None
    if dt is DataType.OHLC and sp is None:
        raise NoCapability("streaming ohlc needs a span (e.g. span='1m')")
    owned = None
    if source is None:
        from dccd_core.sources.registry import build_source

        source = build_source(exchange, rest_url=rest_url, ws_url=ws_url)
        owned = source
    feature = source.capability.feature(dt, Transport.WS)
    ws_types = getattr(source, "ws_data_types", ())
    if feature is None and dt not in ws_types:
        raise NoCapability(f"{source.id} cannot stream {dt} (no WebSocket channel declared)")
    sub = WsSubscription(dt, syms, sp, book_depth)
    streamer = _Streamer(source, sub, store, max_heal_s=max_heal_s)
    prepare = getattr(source, "prepare_ws", None)
    if prepare is not None:  # async set-up the sync hooks need (OKX: swap contract sizes)
        await prepare(sub)
    ws = streamer.ws
    config = ws_config or WsConfig(
        idle_timeout_s=ws.ws_idle_timeout_s, max_session_s=ws.ws_max_session_s
    )
    ping = ws.ws_ping
    label = _label(source.id, dt, sp, syms)

    def status_changed(status: WsStatus) -> None:
        line = describe_connection(label, status)
        if on_status is not None:
            on_status(line, status)
        elif status.connected:
            log.info(line)
        else:
            log.warning(line)

    client = WsClient(
        ws.ws_url(sub),
        subscribe=ws.ws_subscribe_messages(sub),
        app_ping=ping.message if ping else None,
        app_ping_interval_s=ping.interval_s if ping else 20.0,
        config=config,
        on_status=status_changed,
    )
    streamer.client = client
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + max_runtime_s if max_runtime_s is not None else None
    next_flush = started + flush_interval_s
    next_sample = started + snapshot_interval_s
    writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dccd-stream-flush")
    in_flight: concurrent.futures.Future[dict[Symbol, int]] | None = None
    last_report: FlushReport | None = None

    def emit(report: FlushReport) -> None:
        nonlocal last_report
        last_report = report
        if on_flush is not None:
            try:
                on_flush(report)
            except Exception:  # a reporting hook must never stop the data
                log.exception("on_flush callback failed")

    async def read() -> None:
        """Parse and dispatch every pending frame, in order (reconnects in between)."""
        items = await client.next_batch(max_items=client.pending or 1, timeout_s=0.0)
        frames: list[str | bytes] = []
        for item in items:
            if isinstance(item, Connected):
                if frames:
                    await streamer.dispatch(ws.parse_ws_messages(frames))
                    frames = []
                await streamer.on_connected(item)
            else:
                frames.append(item)
        if frames:
            await streamer.dispatch(ws.parse_ws_messages(frames))

    try:
        async with client:
            while not stop.is_set():
                now = loop.time()
                if deadline is not None and now >= deadline:
                    break
                due_at = min(next_flush, next_sample) if dt is DataType.BOOK else next_flush
                if deadline is not None:
                    due_at = min(due_at, deadline)
                # Sleep until a batch is worth parsing or the flush is due (see the module
                # docstring): single frames arriving every few ms wake nobody.
                ready = await client.wait(_DISPATCH_FRAMES, min(due_at - now, _STOP_POLL_S))
                now = loop.time()
                if ready or now >= due_at:
                    await read()
                    now = loop.time()
                if dt is DataType.BOOK and now >= next_sample:
                    await streamer.sample_books()
                    next_sample = now + snapshot_interval_s
                if now >= next_flush:
                    if in_flight is not None:
                        await asyncio.wrap_future(in_flight)
                        emit(streamer.report(in_flight.result(), final=False))
                        in_flight = None
                    in_flight = writer.submit(streamer.write, streamer.take())
                    next_flush = now + flush_interval_s
    finally:
        # Runs on stop, error, cancellation and interrupts alike: parse the frames still
        # waiting (the client is closed: no new session adds to them), wait for the flush
        # in progress, then write whatever is still buffered, synchronously.
        if client.pending:
            try:
                await read()
            except DccdError as exc:
                log.warning("%s: frames received before the stop not parsed: %s", label, exc)
        if in_flight is not None:
            emit(streamer.report(in_flight.result(), final=False))
        if dt is DataType.BOOK:
            for state in streamer.states.values():
                if state.book is not None and state.book.synced and not state.book.crossed():
                    bids, asks = state.book.top(book_depth)
                    if bids and asks and state.book.last_ts != state.last_sample_ts:
                        state.frames.append(book_frame(state.book.last_ts, bids, asks))
        emit(streamer.report(streamer.write(streamer.take()), final=True))
        writer.shutdown(wait=True)
        if owned is not None:
            await owned.aclose()
    assert last_report is not None
    return last_report
