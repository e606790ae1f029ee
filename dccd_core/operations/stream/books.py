"""Book upkeep for a ``book`` stream: deltas applied, resyncs, samples for the store.

Books are kept from snapshot + deltas with the source's sequence/checksum rules
(``dccd_core.operations.book``) and sampled every ``snapshot_interval_s``; a gap,
checksum mismatch or crossed book triggers a resync and is never stored. Its own
module because none of this applies to trades or candles.
"""

from __future__ import annotations

import logging
import time

from dccd_core.domain import DccdError, Symbol
from dccd_core.sources.base import Source
from dccd_core.sources.ws import BookSync, WsBook, WsSource, WsSubscription
from dccd_core.transport.ws import WsClient

from ..book import book_frame
from .state import SymbolState

__all__ = ["BookUpkeep"]

log = logging.getLogger("dccd.stream")

_SNAPSHOT_RETRY_S = 1.0
_MAX_PENDING_DELTAS = 50_000


class BookUpkeep:
    """The book half of the streamer (mixed into ``Streamer``)."""

    source: Source
    ws: WsSource
    sub: WsSubscription
    states: dict[Symbol, SymbolState]
    client: WsClient | None

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
                log.info("%s %s: book resync (%s)", self.source.id, event.symbol, book.last_problem)
                return

    async def _resync(self, symbol: Symbol, state: SymbolState) -> None:
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

    def sample_final_books(self) -> None:
        """At the stop: the last synced, uncrossed state of each book, unless sampled."""
        for state in self.states.values():
            book = state.book
            if book is not None and book.synced and not book.crossed():
                bids, asks = book.top(self.sub.book_depth)
                if bids and asks and book.last_ts != state.last_sample_ts:
                    state.frames.append(book_frame(book.last_ts, bids, asks))
