"""Streams of data types with no REST history (liquidations): gaps are recorded, not healed.

A liquidation exists only on the exchange's WebSocket: no REST endpoint serves the past,
so a reconnect cannot heal what was missed while the connection was down. The stream
must not pretend otherwise. It never calls REST for these types; instead:

* coverage grows to "now" at every flush while connected (liquidations are sparse: an
  hour without one is an hour watched, not a hole), and only then;
* a reconnect closes the coverage at the last moment known watched and opens it again
  at the reconnect, so ``[last covered, reconnect)`` stays outside the coverage
  (``dccd gaps``, the ``no_holes`` check and ``find_holes`` show it), and counts one
  ``unhealed_gaps`` in the :class:`FlushReport`.

A connection that died without the client noticing yet (before its idle timeout) is
covered up to the last flush that saw it connected: the gap is recorded from there.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from dccd_core.domain import Symbol, now_ns
from dccd_core.sources.base import Source
from dccd_core.sources.ws import WsLiquidations
from dccd_core.transport.ws import Connected, WsClient

from .state import SymbolState

__all__ = ["StreamOnly"]

log = logging.getLogger("dccd.stream")


class StreamOnly:
    """The stream-only half of the streamer (mixed into ``Streamer``)."""

    source: Source
    states: dict[Symbol, SymbolState]
    client: WsClient | None
    #: sessions whose Connected marker was handled (the client's ``sessions`` count)
    sessions_seen: int = 0

    def _coverage_break(self, state: SymbolState, start_ts: int, end_ts: int) -> None: ...

    def open_unhealable(self, symbol: Symbol, state: SymbolState, marker: Connected) -> None:
        """A (re)connect of a stream-only type: no heal; a reconnect's gap is recorded.

        The gap ends when the session opened (``marker.at_ns``, not now: the marker is
        handled with the frames of its batch, up to a flush interval later).
        """
        self.sessions_seen = marker.session + 1
        now = marker.at_ns or now_ns()
        if marker.reconnects == 0 or state.cov_start is None:
            state.cov_start = now  # the stream watches from here; nothing before is claimed
            return
        # coverage is [start, end] inclusive of the last row seen: the gap starts after it
        covered_until = state.cov_end + 1 if state.cov_end is not None else state.cov_start
        covered_until = min(covered_until, now)
        self._coverage_break(state, covered_until, now)
        state.unwatched_from = covered_until
        state.report = replace(state.report, unhealed_gaps=state.report.unhealed_gaps + 1)
        log.warning(
            "%s %s: reconnected; %.1f s not watched cannot be fetched from REST "
            "(recorded as a gap in coverage)",
            self.source.id,
            symbol,
            (now - covered_until) / 1e9,
        )

    def extend_watched(self) -> None:
        """While connected, every symbol is watched up to now (called before a flush);
        not while a session's marker waits unhandled (its gap is not recorded yet)."""
        status = self.client.status() if self.client is not None else None
        if status is None or not status.connected or status.sessions != self.sessions_seen:
            return
        now = now_ns()
        for state in self.states.values():
            if state.cov_start is not None:
                state.cov_end = max(state.cov_end or now, now)

    async def on_liquidations(self, event: WsLiquidations) -> None:
        state = self.states.get(event.symbol)
        if state is None or event.rows.height == 0:
            return
        state.frames.append(event.rows)
        first = int(event.rows.get_column("ts").min())  # type: ignore[arg-type]
        last = int(event.rows.get_column("ts").max())  # type: ignore[arg-type]
        state.last_ts = max(state.last_ts or last, last)
        gap = state.unwatched_from
        if state.cov_start is None or (gap is not None and gap < first < state.cov_start):
            state.cov_start = first  # the new session delivered from here (ms clocks)
        state.unwatched_from = None
        state.cov_end = max(state.cov_end or last, last)
