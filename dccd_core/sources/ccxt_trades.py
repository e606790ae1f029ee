"""Trade paging through ccxt, one page at a time, without trusting ccxt's own pagination.

Pure logic: ``plan`` says what to ask for the next page, ``advance`` reads the page and
says where the next one starts. The source does the I/O in between. Seen with ccxt
4.5.90 against a Binance-compatible server, and avoided here:

* paging forward by "last ts + 1 ms" loses trades sharing that millisecond: a time
  page asks ``since = last_ts_ms`` inclusive and drops the ids already returned at
  that millisecond (``TimeCursor.seen_ids``);
* Binance answers ``fetch_trades(since)`` for at most one hour, so an empty page is a
  quiet hour, not the end: hour windows are walked until the window's end;
* Binance returns the *last* trades of a time window holding more than a page, so a
  full time page is not trusted: its window is halved until a page is complete; once
  any trade id is known, pages are addressed by id (``fromId``), which is exact;
* a full page of trades all in one millisecond cannot be passed by time: by id where
  the venue allows it (probing back from the page's first id), else ``SourceError``.

Generic venues (no quirks): ``since`` inclusive, no window; an empty page, or a page
bringing nothing new, means nothing more exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dccd_core.domain import NS_PER_MS, SourceError, UnexpectedPayload

from .ccxt_exchange import TradeQuirks

__all__ = [
    "IdCursor",
    "PageRequest",
    "TimeCursor",
    "TradeCursor",
    "advance",
    "first_cursor",
    "plan",
]


@dataclass(frozen=True, slots=True)
class TimeCursor:
    """Ask trades from ``since_ms`` (inclusive); ``seen_ids`` were returned at that ms.

    ``window_ms``: width of the next time window where the venue needs one.
    """

    since_ms: int
    seen_ids: frozenset[str] = frozenset()
    window_ms: int | None = None


@dataclass(frozen=True, slots=True)
class IdCursor:
    """Ask trades from aggregate id ``from_id`` (inclusive).

    ``floor_ms`` set: probing backwards for the first trade at or after ``floor_ms``
    (its millisecond holds more than a page), ``from_id`` steps back a page at a time.
    """

    from_id: int
    floor_ms: int | None = None


TradeCursor = TimeCursor | IdCursor


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One ``fetch_trades`` call: ``since``/``until`` (ms, inclusive) or an id param."""

    since_ms: int | None
    until_ms: int | None
    from_id: int | None
    limit: int


def first_cursor(start_ts: int, quirks: TradeQuirks) -> TimeCursor:
    """The cursor of a window's first page: its start, floored to the ms."""
    return TimeCursor(since_ms=start_ts // NS_PER_MS, window_ms=quirks.window_ms)


def plan(cursor: TradeCursor, end_ms: int, limit: int, quirks: TradeQuirks) -> PageRequest | None:
    """What to ask for ``cursor``'s page; None when the window ``[.., end_ms)`` is done."""
    if isinstance(cursor, IdCursor):
        return PageRequest(None, None, cursor.from_id, limit)
    if cursor.since_ms >= end_ms:
        return None
    until = None
    if cursor.window_ms is not None:
        until = min(cursor.since_ms + cursor.window_ms - 1, end_ms - 1)
    return PageRequest(cursor.since_ms, until, None, limit)


def _ms(frame: pl.DataFrame) -> pl.Series:
    return frame["ts"] // NS_PER_MS


def _int_ids(frame: pl.DataFrame, exchange: str) -> pl.Series:
    ids = frame["trade_id"].cast(pl.Int64, strict=False)
    if ids.null_count():
        raise UnexpectedPayload(
            f"{exchange}: trade ids {frame['trade_id'].head(3).to_list()} are not integers, "
            "cannot page by id"
        )
    return ids


def advance(
    cursor: TradeCursor,
    request: PageRequest,
    page: pl.DataFrame,
    end_ms: int,
    quirks: TradeQuirks,
    exchange: str,
) -> tuple[pl.DataFrame, TradeCursor | None]:
    """The new rows of ``page`` and the next cursor (None: the window is drained)."""
    if isinstance(cursor, IdCursor):
        return _advance_by_id(cursor, request, page, end_ms, exchange)
    full = page.height >= request.limit
    ms = _ms(page)
    if quirks.window_ms is not None and request.until_ms is not None:
        return _advance_window(cursor, request, page, ms, full, end_ms, quirks, exchange)
    fresh = page
    if cursor.seen_ids:
        fresh = page.filter(~((ms == cursor.since_ms) & page["trade_id"].is_in(cursor.seen_ids)))
    if page.height == 0:
        return fresh, None
    if full and ms.min() == ms.max():
        return fresh, _stuck(page, int(ms.min()), request.limit, quirks, exchange)  # type: ignore[arg-type]
    if fresh.height == 0:
        return fresh, None
    last_ms = int(_ms(fresh).max())  # type: ignore[arg-type]
    if last_ms >= end_ms:
        return fresh, None
    seen = frozenset(page.filter(ms == last_ms)["trade_id"].to_list())
    return fresh, TimeCursor(last_ms, seen, cursor.window_ms)


def _stuck(
    page: pl.DataFrame, at_ms: int, limit: int, quirks: TradeQuirks, exchange: str
) -> IdCursor:
    """A full page inside one ms: continue by id, or say why we cannot."""
    if quirks.id_param is None:
        raise SourceError(
            f"{exchange} returned a full page of {limit} trades all at ms {at_ms}; its API "
            "cannot page past them by time and has no id parameter, so trades would be lost. "
            "Use a native source for this exchange, if one exists."
        )
    first_id = int(_int_ids(page, exchange).min())  # type: ignore[arg-type]
    return IdCursor(from_id=max(0, first_id - limit), floor_ms=at_ms)


def _advance_window(
    cursor: TimeCursor,
    request: PageRequest,
    page: pl.DataFrame,
    ms: pl.Series,
    full: bool,
    end_ms: int,
    quirks: TradeQuirks,
    exchange: str,
) -> tuple[pl.DataFrame, TradeCursor | None]:
    assert request.until_ms is not None
    since, until = cursor.since_ms, request.until_ms
    if full:
        # More trades than a page in this window: the page may be its tail. Narrow the
        # window until a page holds it all: by half, or down to the page's own span
        # where the trades are denser (never below an eighth, so one crowded ms does
        # not shrink the window to nothing); a single full ms is passed by id.
        first_ms, last_ms = int(ms.min()), int(ms.max())  # type: ignore[arg-type]
        if first_ms == last_ms > since:
            # The page is one crowded ms: take everything before it, then the crowd.
            return page.clear(), TimeCursor(since, cursor.seen_ids, first_ms - since)
        if first_ms <= since:
            # The page starts at the window's first ms, which may hold more trades
            # than it shows: find them by id (narrowing cannot split a ms).
            return page.clear(), _stuck(page, since, request.limit, quirks, exchange)
        if until > since:
            width = until - since + 1
            page_span_ms = last_ms - first_ms + 1
            narrower = max(width // 8, min(width // 2, page_span_ms * 9 // 10))
            return page.clear(), TimeCursor(since, cursor.seen_ids, max(1, narrower))
        return page.clear(), _stuck(page, since, request.limit, quirks, exchange)
    fresh = page.filter(ms >= since)
    if fresh.height and quirks.id_param is not None:
        last_id = int(_int_ids(fresh, exchange).max())  # type: ignore[arg-type]
        return fresh, IdCursor(from_id=last_id + 1)
    if until + 1 >= end_ms:
        return fresh, None
    # An empty window is a quiet stretch, not the end. A narrowed window grows back by
    # doubling (resetting to the widest would shrink again on the same crowd).
    widest = quirks.window_ms or until - since + 1
    window = widest if cursor.window_ms is None else min(widest, 2 * cursor.window_ms)
    return fresh, TimeCursor(until + 1, frozenset(), window)


def _advance_by_id(
    cursor: IdCursor, request: PageRequest, page: pl.DataFrame, end_ms: int, exchange: str
) -> tuple[pl.DataFrame, TradeCursor | None]:
    if page.height == 0:
        return page, None
    ms = _ms(page)
    short = page.height < request.limit  # by id, a short page reached the newest trade
    next_id = int(_int_ids(page, exchange).max()) + 1  # type: ignore[arg-type]
    if cursor.floor_ms is not None:
        if int(ms.min()) >= cursor.floor_ms and cursor.from_id > 0:  # type: ignore[arg-type]
            # Still inside the crowded millisecond: step a page further back.
            return page.clear(), IdCursor(max(0, cursor.from_id - request.limit), cursor.floor_ms)
        page = page.filter(ms >= cursor.floor_ms)
    if short or int(ms.max()) >= end_ms:  # type: ignore[arg-type]
        return page, None
    return page, IdCursor(from_id=next_id)
