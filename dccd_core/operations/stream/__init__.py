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
A stream-only type (liquidations: a few frames a second at most) is parsed frame by
frame instead, so a source whose rows carry no exchange time (BitMEX ``liquidation``)
stamps them on arrival, not at the next flush.

Gaps are healed from REST *before* the stream goes on (except for the stream-only
liquidations, which have no REST history: their reconnect gaps are recorded in coverage
and counted as unhealed, see ``stream_only``):

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

The package: this module is the loop (connect, wait for a batch, parse, flush, stop);
``streamer`` handles the parsed events and the REST heals, ``books`` keeps order books,
``flush`` writes and reports, ``state`` holds the records they share.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from dccd_core.domain import (
    DERIVATIVES_ONLY,
    STREAM_ONLY,
    DataType,
    DccdError,
    NoCapability,
    Span,
    Symbol,
    Transport,
)
from dccd_core.sources.base import Source
from dccd_core.sources.ws import WsSource, WsSubscription
from dccd_core.transport.ws import Connected, WsClient, WsConfig, WsStatus

from .state import FlushReport, StreamStore, SymbolReport, describe_connection, stream_label
from .streamer import Streamer

__all__ = ["FlushReport", "StreamStore", "SymbolReport", "describe_connection", "stream"]

log = logging.getLogger("dccd.stream")

#: Older gaps than this are left to a backfill (the store's coverage shows them).
DEFAULT_MAX_HEAL_S = 6 * 3600.0
#: Parse as soon as this many frames wait, flush due or not: bounds the memory held as
#: raw frames and the parsing left to do when the flush comes (~50 ms of work).
_DISPATCH_FRAMES = 5_000
#: The longest the loop sleeps without looking at ``stop``.
_STOP_POLL_S = 0.25

#: the name the tests use (from before the split into a package)
_Streamer = Streamer


@runtime_checkable
class PreparesWs(Protocol):
    """A source with async set-up before it connects (OKX, BitMEX: contract sizes)."""

    async def prepare_ws(self, sub: WsSubscription) -> None: ...


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
    spot = [s for s in syms if not s.is_perpetual]
    if dt in DERIVATIVES_ONLY and spot:
        raise NoCapability(
            f"{dt} needs a perpetual symbol like {spot[0].base}/{spot[0].quote}:"
            f"{spot[0].quote}, not the spot symbol {spot[0]}"
        )
    owned = None
    if source is None:
        from dccd_core.sources.registry import build_source

        source = build_source(exchange, rest_url=rest_url, ws_url=ws_url)
        owned = source
    feature = source.capability.feature(dt, Transport.WS)
    ws_types = source.ws_data_types if isinstance(source, WsSource) else ()
    if feature is None and dt not in ws_types:
        raise NoCapability(f"{source.id} cannot stream {dt} (no WebSocket channel declared)")
    sub = WsSubscription(dt, syms, sp, book_depth)
    streamer = Streamer(source, sub, store, max_heal_s=max_heal_s)
    if isinstance(source, PreparesWs):  # async set-up the sync hooks need (OKX: contract sizes)
        await source.prepare_ws(sub)
    ws = streamer.ws
    config = ws_config or WsConfig(
        idle_timeout_s=ws.ws_idle_timeout_s, max_session_s=ws.ws_max_session_s
    )
    ping = ws.ws_ping
    label = stream_label(source.id, dt, sp, syms)

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
    dispatch_frames = 1 if dt in STREAM_ONLY else _DISPATCH_FRAMES
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
                ready = await client.wait(dispatch_frames, min(due_at - now, _STOP_POLL_S))
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
            streamer.sample_final_books()
        emit(streamer.report(streamer.write(streamer.take()), final=True))
        writer.shutdown(wait=True)
        if owned is not None:
            await owned.aclose()
    assert last_report is not None
    return last_report
