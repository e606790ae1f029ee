"""The proof that every trade walk ends, whatever the exchange answers.

Its own module because both trade paging modes (by id, by time segments) run every
page through it, and the rule is subtle enough to read on its own: a page must bring
a trade of the window past the walk's frontier, or be empty with a cursor not asked
since the walk last moved.
"""

from __future__ import annotations

import polars as pl

from dccd_core.domain import PagingStalled, Symbol, iso_datetime

from ..pages import TradePage
from .chunks import clip_rows

__all__ = ["MAX_IDLE_PAGES", "Advance"]


#: consecutive pages holding trades but none new to the walk before it is declared stuck
MAX_IDLE_PAGES = 8


class Advance:
    """Proves that a walk of pages (one segment, or one id-paged window) moves on.

    Every page must either bring a trade of the window past the walk's frontier (the
    newest ts seen paging forward, the oldest paging backward, and the ids seen at that
    ts), or be empty with a cursor not asked since the walk last moved (a quiet stretch
    walked by time). A cursor that comes back is a loop: refused at once. Pages that hold
    trades but none new (the same page again, pages dated outside the window) are
    refused after ``MAX_IDLE_PAGES`` in a row. So every paging mode ends after a bounded
    number of requests, whatever the exchange answers.
    """

    def __init__(self, exchange: str, symbol: Symbol, forward: bool) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.forward = forward
        self.frontier_ts: int | None = None
        self.frontier_ids: set[str] = set()
        self.idle = 0
        self.requests = 0
        self._asked: set[object] = set()
        self._asked_unhashable: list[object] = []

    def _seen_cursor(self, cursor: object) -> bool:
        try:
            return cursor in self._asked
        except TypeError:
            return any(cursor == c for c in self._asked_unhashable)

    def _remember(self, cursor: object) -> None:
        try:
            self._asked.add(cursor)
        except TypeError:
            self._asked_unhashable.append(cursor)

    def _moved(self, rows: pl.DataFrame) -> bool:
        """Whether ``rows`` (clipped to the window) extend the frontier; updates it."""
        if rows.height == 0:
            return False
        ts = rows.get_column("ts")
        edge = int(ts.max() if self.forward else ts.min())  # type: ignore[arg-type]
        at_edge = set(rows.filter(pl.col("ts") == edge).get_column("trade_id").to_list())
        beyond = self.frontier_ts is None or (
            edge > self.frontier_ts if self.forward else edge < self.frontier_ts
        )
        if beyond:
            self.frontier_ts, self.frontier_ids = edge, at_edge
            return True
        if edge == self.frontier_ts and not at_edge <= self.frontier_ids:
            self.frontier_ids |= at_edge
            return True
        return False

    def observe(self, asked: object | None, page: TradePage, start_ts: int, end_ts: int) -> None:
        """Check one answered page of the window ``[start_ts, end_ts)`` asked at ``asked``."""
        self.requests += max(1, page.requests)
        if self._moved(clip_rows(page.rows, start_ts, end_ts)):
            self.idle = 0
            self._asked.clear()
            self._asked_unhashable.clear()
            return
        self._remember(asked)
        nxt = page.next_cursor
        if nxt is not None and self._seen_cursor(nxt):
            raise self._stalled(
                f"the cursor does not move (asked {asked!r}, told to ask {nxt!r} again)",
                asked,
                page,
                start_ts,
                end_ts,
            )
        if page.rows.height == 0:
            return  # a quiet stretch: the cursor moved on, the window did not
        self.idle += 1
        if self.idle >= MAX_IDLE_PAGES:
            raise self._stalled(
                f"{self.idle} pages in a row brought no trade of the window not already "
                "seen (the same page again, or pages dated outside the window)",
                asked,
                page,
                start_ts,
                end_ts,
            )

    def _stalled(
        self, what: str, asked: object, page: TradePage, start_ts: int, end_ts: int
    ) -> PagingStalled:
        rows = page.rows
        if rows.height:
            ts = rows.get_column("ts")
            ids = rows.get_column("trade_id")
            seen = (
                f"the last page held {rows.height} trades dated "
                f"{iso_datetime(int(ts.min()))} .. {iso_datetime(int(ts.max()))}, "  # type: ignore[arg-type]
                f"ids {ids[0]} .. {ids[-1]}"
            )
        else:
            seen = "the last page was empty"
        frontier = iso_datetime(self.frontier_ts) if self.frontier_ts is not None else "nothing yet"
        return PagingStalled(
            f"{self.exchange} trades {self.symbol}: paging "
            f"{iso_datetime(start_ts)} -> {iso_datetime(end_ts)} stopped after "
            f"{self.requests} requests: {what}; cursor {asked!r}; {seen}; got as far as "
            f"{frontier}. The exchange is answering pages that do not advance: retry "
            "later, and if it persists report this line (a changed API?)"
        )
