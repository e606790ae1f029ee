"""A market on the wall clock: trade ``i`` at ``t0 + i / per_ms`` and a stepped level book."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Book",
    "ClockMarket",
]


#: (bids, asks), best first, of (price, amount)
Book = tuple[list[tuple[float, float]], list[tuple[float, float]]]


@dataclass
class ClockMarket:
    """Trade ``i`` happens at ``t0_ms + i // per_ms`` (``trade(i)`` is its wire record), so
    the truth of any stretch is known; a level book stepped by update id, each state
    kept in ``book_history[update_id]``. A subclass writes the wire format."""

    per_ms: int = 1
    t0_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    rest_requests: int = 0
    subscriptions: list[Any] = field(default_factory=list)
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    update_id: int = 1000
    book_history: dict[int, Book] = field(default_factory=dict)

    def seed_book(
        self, levels: int, tick: float, decimals: int, size: Callable[[int], float] = float,
        ask_offset: int = 0,
    ) -> None:  # fmt: skip
        """The opening book around 100: level ``k`` at ``100 -/+ k * tick`` holds
        ``size(k)`` (asks ``size(k + ask_offset)``); recorded as update ``update_id``."""
        for k in range(1, levels):
            self.bids[round(100.0 - k * tick, decimals)] = size(k)
            self.asks[round(100.0 + k * tick, decimals)] = size(k + ask_offset)
        self._record()

    def trade(self, i: int) -> dict[str, Any]:
        """Trade ``i`` as the exchange sends it."""
        raise NotImplementedError

    def now_index(self) -> int:
        """Index of the first trade that does not exist yet."""
        return max(0, (int(time.time() * 1000) - self.t0_ms + 1) * self.per_ms)

    def truth(self, first: int, last: int) -> list[dict[str, Any]]:
        """Trades ``first..last`` (indexes, inclusive)."""
        return [self.trade(i) for i in range(first, last + 1)]

    def _record(self, depth: int | None = 50, scale: float | None = None) -> None:
        """Keep the book after ``update_id`` (top ``depth`` levels, sizes times ``scale``)."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        if scale is not None:
            bids, asks = [(p, q * scale) for p, q in bids], [(p, q * scale) for p, q in asks]
        self.book_history[self.update_id] = (bids, asks)
