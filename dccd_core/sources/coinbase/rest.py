"""Coinbase Exchange REST: pure request builders and the page-level ``CoinbaseRest``.

Docs: https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproductcandles

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

from dccd_core.domain import DataType, Span, Symbol, errors, iso_datetime, now_ns
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .. import features
from ..base import Endpoints, Request, Source, TradePage
from .capability import (
    CANDLE_PAGE_LIMIT,
    CAPABILITY,
    GRANULARITIES_S,
    REST_URL,
    SPANS,
    TRADE_PAGE_LIMIT,
    WS_URL,
)
from .parse import check_payload, parse_book, parse_candles, parse_trades
from .symbols import native_symbol, parse_symbols

__all__ = [
    "ERRORS",
    "CoinbaseRest",
    "build_book_request",
    "build_candles_request",
    "build_symbols_request",
    "build_trades_request",
]

#: Coinbase Exchange has no error codes: a ``{"message": ...}`` body with the HTTP
#: status (docs.cdp.coinbase.com/exchange/rest-api/requests and /rate-limits). The
#: status decides on its own (5xx retried, 429 pauses); these messages are the
#: documented and observed ones.
ERRORS = ErrorTable.of(
    {
        "Internal server error": TRANSIENT,  # HTTP 500: a problem with Coinbase's server
        "Internal Server Error": TRANSIENT,
        "Public rate limit exceeded": RATE_LIMIT,  # HTTP 429, per IP
        "Private rate limit exceeded": RATE_LIMIT,  # HTTP 429, per profile
        "NotFound": PERMANENT,  # HTTP 404: unknown product
    }
)


def build_candles_request(product_id: str, span: Span, start_ts: int, end_ts: int) -> Request:
    """``/products/{id}/candles?granularity=&start=&end=`` for bars opening in [start, end).

    Coinbase refuses more than 300 bars per request and any other granularity than
    60/300/900/3600/21600/86400 s, so both are checked here, before the request.
    """
    if span.seconds not in GRANULARITIES_S:
        labels = " ".join(s.label for s in SPANS)
        raise errors.NoCapability(
            f"coinbase has no {span} candles: its spans are {labels}; {features.DERIVE_HINT}"
        )
    bars = -(-(end_ts - start_ts) // span.ns)
    if bars > CANDLE_PAGE_LIMIT:
        raise errors.NoCapability(
            f"coinbase serves at most {CANDLE_PAGE_LIMIT} candles a request, asked {bars}; "
            "split the window (the candle paginator does)"
        )
    params: dict[str, str | int] = {
        "granularity": span.seconds,
        "start": iso_datetime(start_ts),
        "end": iso_datetime(end_ts),
    }
    return Request(f"/products/{product_id}/candles", params)


def build_trades_request(
    product_id: str, after_id: int | None = None, limit: int = TRADE_PAGE_LIMIT
) -> Request:
    """``/products/{id}/trades?limit=[&after=]``: newest first; ``after`` = older than that id."""
    params: dict[str, str | int] = {"limit": min(limit, TRADE_PAGE_LIMIT)}
    if after_id is not None:
        params["after"] = after_id
    return Request(f"/products/{product_id}/trades", params)


def build_book_request(product_id: str) -> Request:
    """``/products/{id}/book?level=2``: the aggregated book, best first."""
    return Request(f"/products/{product_id}/book", {"level": 2})


def build_symbols_request() -> Request:
    """``/products``: every product and its status."""
    return Request("/products")


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


class CoinbaseRest(Source):
    """Coinbase Exchange (spot) pages over REST:
    https://docs.cdp.coinbase.com/exchange/introduction/welcome"""

    #: trade_id: an integer per product, growing with time (the first page's bisection
    #: relies on it)
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(REST_URL, WS_URL)
    check_payload = staticmethod(check_payload)
    errors = ERRORS

    def native_symbol(self, symbol: Symbol) -> str:
        return native_symbol(symbol)

    async def fetch_symbols(self) -> set[Symbol] | None:
        return parse_symbols(await self._get(build_symbols_request()))

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        self.capability.require(DataType.OHLC, span=span)
        request = build_candles_request(self.native_symbol(symbol), span, start_ts, end_ts)
        rows = parse_candles(await self._get(request))
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
        response = await self._response(build_trades_request(product, after))
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
        data = await self._get(build_book_request(self.native_symbol(symbol)))
        return parse_book(data, depth, now_ns())
