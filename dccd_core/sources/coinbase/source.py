"""``CoinbaseSource``: Coinbase Exchange pages over REST (candles, trades, book).

Trades page backwards by id (``after`` = older than this id, ``CB-AFTER`` = the next
cursor), so no two trades sharing a microsecond are ever split by a time cursor. The
API has no time parameter: the first page of a window that is not the latest is found
by bisecting trade ids (ids grow with time), one small request per step, counted in
``TradePage.requests``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import DataType, Span, Symbol, now_ns

from ..base import Endpoints, Source, TradePage
from .capability import CAPABILITY, REST_URL, WS_URL
from .parse import check_payload, parse_book, parse_candles, parse_trades
from .rest import (
    ERRORS,
    build_book_request,
    build_candles_request,
    build_products_request,
    build_trades_request,
)
from .symbols import native_symbol, parse_products
from .ws import CoinbaseWs

__all__ = ["CoinbaseSource"]


def _next_after(headers: Mapping[str, str], rows: pl.DataFrame) -> int | None:
    """The cursor for the next (older) page: ``CB-AFTER``, else the oldest id of the page."""
    raw = headers.get("cb-after") or headers.get("CB-AFTER")
    if raw:
        return int(raw)
    if rows.height == 0:
        return None
    return int(rows.get_column("trade_id").cast(pl.Int64).min())  # type: ignore[arg-type]


def _min_max_ts(rows: pl.DataFrame) -> tuple[int, int]:
    ts = rows.get_column("ts")
    return int(ts.min()), int(ts.max())  # type: ignore[arg-type]


class CoinbaseSource(CoinbaseWs, Source):
    """Coinbase Exchange (spot): https://docs.cdp.coinbase.com/exchange/introduction/welcome"""

    id: ClassVar[str] = "coinbase"
    #: trade_id: an integer per product, growing with time (the first page's bisection
    #: relies on it)
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(REST_URL, WS_URL)
    check_payload = staticmethod(check_payload)
    #: documented error codes -> transient / rate limit / permanent (HTTP client)
    errors = ERRORS

    def native_symbol(self, symbol: Symbol) -> str:
        return native_symbol(symbol)

    async def fetch_symbols(self) -> set[Symbol] | None:
        path, params = build_products_request()
        response = await self.http.get(path, params)
        return parse_products(response.data)

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        self.capability.require(DataType.OHLC, span=span)
        path, params = build_candles_request(self.native_symbol(symbol), span, start_ts, end_ts)
        response = await self.http.get(path, params)
        rows = parse_candles(response.data)
        return rows.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page (newest first, any rows may spill out of the window).

        The window is drained when a page reaches a trade older than ``start_ts`` or
        when no older trade exists (an empty page): a by-id page proves both.
        """
        product = self.native_symbol(symbol)
        if cursor is None:
            rows, after, requests = await self._first_page(product, end_ts)
        else:
            rows, after = await self._page(product, int(cursor))
            requests = 1
        done = rows.height == 0 or after is None or _min_max_ts(rows)[0] < start_ts
        return TradePage(rows, None if done else after, requests)

    async def _page(self, product: str, after: int | None) -> tuple[pl.DataFrame, int | None]:
        path, params = build_trades_request(product, after)
        response = await self.http.get(path, params)
        rows = parse_trades(response.data)
        return rows, _next_after(response.headers, rows)

    async def _first_page(
        self, product: str, end_ts: int
    ) -> tuple[pl.DataFrame, int | None, int]:
        """The newest page holding trades older than ``end_ts``, bisecting ids if needed.

        ``after=m`` returns the trades with id < m. A cursor ``m`` is *good* when every
        trade below it is older than ``end_ts``; goodness is monotone in ``m`` because
        ids grow with time. Invariant: ``lo`` good, ``hi`` not good.
        """
        rows, after = await self._page(product, None)
        requests = 1
        if rows.height == 0 or _min_max_ts(rows)[0] < end_ts:
            return rows, after, requests
        ids = rows.get_column("trade_id").cast(pl.Int64)
        lo, hi = 1, int(ids.min()) + 1  # type: ignore[arg-type]
        best: tuple[pl.DataFrame, int | None] | None = None
        while hi - lo > 1:
            mid = (lo + hi) // 2
            page, page_after = await self._page(product, mid)
            requests += 1
            if page.height == 0:
                lo, best = mid, (page, page_after)
                continue
            oldest_ts, newest_ts = _min_max_ts(page)
            if newest_ts < end_ts:
                lo, best = mid, (page, page_after)
            elif oldest_ts >= end_ts:
                oldest_id = int(page.get_column("trade_id").cast(pl.Int64).min())  # type: ignore[arg-type]
                hi = max(lo + 1, min(hi, oldest_id + 1))
            else:  # this page straddles end_ts: it is the first page of the window
                return page, page_after, requests
        if best is None or lo == 1:
            if lo == 1:
                return rows.clear(), None, requests
            page, page_after = await self._page(product, lo)
            return page, page_after, requests + 1
        return best[0], best[1], requests

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        self.capability.require(DataType.BOOK, depth=depth)
        path, params = build_book_request(self.native_symbol(symbol))
        response = await self.http.get(path, params)
        return parse_book(response.data, depth, now_ns())
