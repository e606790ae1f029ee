"""Bitfinex v2 REST: pure request builders and the page-level ``BitfinexRest``.

Times are epoch milliseconds; ``start`` and ``end`` are inclusive. ``sort=1`` asks for
oldest-first rows (the default, ``-1``, is newest-first). Each request carries the
weight ``capability.py`` charges its endpoint.

Trades are paged by time, and Bitfinex prints many trades in one millisecond, so a
"last MTS + 1 ms" cursor would lose them. The next page starts AT the last page's
newest millisecond (inclusive); the trades of that millisecond come back again and the
paginator drops them by trade id. A full page that lies entirely within one
millisecond cannot move a time cursor, so the same millisecond is then read from its
other end (``sort=-1``); the two pages overlap iff they hold all of its trades.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import NS_PER_MS, DataType, Span, Symbol, errors, now_ns
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .. import columns
from ..base import Endpoints, Request, Source, TradePage
from .capability import (
    CANDLE_TIMEFRAMES,
    CANDLES_PAGE_LIMIT,
    CAPABILITY,
    REST_URL,
    TRADES_PAGE_LIMIT,
    WS_URL,
)
from .parse import check_payload, parse_book, parse_candles, parse_trades
from .symbols import parse_symbols, to_native

__all__ = [
    "ERRORS",
    "BitfinexRest",
    "build_book_request",
    "build_candles_request",
    "build_symbols_request",
    "build_trades_request",
]

#: Bitfinex's documented error codes (docs.bitfinex.com): ``["error", code, message]``
#: (HTTP 500 for a bad parameter, the reason a 5xx cannot simply mean "retry") and
#: ``{"error": "ERR_RATE_LIMIT"}`` when an IP is blocked, for up to 60 s.
ERRORS = ErrorTable.of(
    {
        10020: PERMANENT,  # ERR_PARAMS: request parameters error ("limit: invalid", ...)
        11000: TRANSIENT,  # ERR_READY: not ready, try again later
        11010: RATE_LIMIT,  # ERR_RATE_LIMIT as a code
        20060: TRANSIENT,  # maintenance: retry in a few minutes
        "ERR_RATE_LIMIT": RATE_LIMIT,
    },
    rate_limit_pause_s=60.0,
)


def timeframe(span: Span) -> str:
    """The Bitfinex timeframe label of ``span`` (``1d`` -> ``1D``), or ``NoCapability``."""
    try:
        return CANDLE_TIMEFRAMES[span]
    except KeyError:
        CAPABILITY.require(DataType.OHLC, span=span)
        raise errors.NoCapability(f"bitfinex has no {span} candles") from None


def build_candles_request(
    native: str, span: Span, start_ts: int, end_ts: int, limit: int
) -> Request:
    """Bars opening in ``[start_ts, end_ts)``: ``/v2/candles/trade:1m:tBTCUSD/hist``."""
    params: dict[str, str | int] = {
        "sort": 1,
        "start": columns.ceil_ms(start_ts),
        "end": columns.ceil_ms(end_ts) - 1,
        "limit": limit,
    }
    weight = CAPABILITY.require(DataType.OHLC).weight
    return Request(f"/v2/candles/trade:{timeframe(span)}:{native}/hist", params, weight)


def build_trades_request(
    native: str, start_ms: int, end_ms: int, limit: int, *, newest_first: bool = False
) -> Request:
    """Trades with ``start_ms <= MTS <= end_ms``: ``/v2/trades/tBTCUSD/hist``."""
    params: dict[str, str | int] = {
        "sort": -1 if newest_first else 1,
        "start": start_ms,
        "end": end_ms,
        "limit": limit,
    }
    weight = CAPABILITY.require(DataType.TRADES).weight
    return Request(f"/v2/trades/{native}/hist", params, weight)


def build_book_request(native: str, depth: int) -> Request:
    """``/v2/book/tBTCUSD/P0?len=25``: raw-precision aggregated levels, ``len`` per side."""
    weight = CAPABILITY.require(DataType.BOOK).weight
    return Request(f"/v2/book/{native}/P0", {"len": depth}, weight)


def build_symbols_request(kind: str = "exchange") -> Request:
    """``/v2/conf/pub:list:pair:exchange`` (spot) or ``...:futures`` (perpetuals)."""
    return Request(f"/v2/conf/pub:list:pair:{kind}")


class BitfinexRest(Source):
    """Bitfinex public v2 API: candles, trades and book pages over REST."""

    #: trade ID: a global integer, growing with time
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(REST_URL, WS_URL)
    check_payload = staticmethod(check_payload)
    errors = ERRORS
    #: rows asked per trades page (the exchange's maximum; tests page smaller)
    trades_page_limit: int = TRADES_PAGE_LIMIT

    # -- markets ---------------------------------------------------------------

    def native_symbol(self, symbol: Symbol) -> str:
        return to_native(symbol)

    async def fetch_symbols(self) -> set[Symbol] | None:
        """Spot pairs and perpetuals (two requests, cached)."""
        requests = [build_symbols_request(kind) for kind in ("exchange", "futures")]
        return await self._listed_in(requests, parse_symbols)

    # -- pages -----------------------------------------------------------------

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        CAPABILITY.require(DataType.OHLC, span=span)
        bars = max(1, -(-(end_ts - span.floor(start_ts)) // span.ns))
        request = build_candles_request(
            self.native_symbol(symbol), span, start_ts, end_ts, min(CANDLES_PAGE_LIMIT, bars)
        )
        frame = parse_candles(await self._get(request))
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page from ``cursor`` (a start ms, inclusive) to the window end.

        The window is drained when a page comes back short: Bitfinex returns up to
        ``limit`` rows, so fewer means nothing else lies before ``end``.
        """
        native = self.native_symbol(symbol)
        limit = self.trades_page_limit
        start_ms = int(cursor) if cursor is not None else start_ts // NS_PER_MS
        end_ms = columns.ceil_ms(end_ts) - 1
        if start_ms > end_ms:
            return TradePage(columns.empty_frame(DataType.TRADES), None, requests=0)
        page = parse_trades(await self._get(build_trades_request(native, start_ms, end_ms, limit)))
        if page.height < limit:
            return TradePage(page, None)
        first_ms = int(page["ts"].min()) // NS_PER_MS  # type: ignore[arg-type]
        last_ms = int(page["ts"].max()) // NS_PER_MS  # type: ignore[arg-type]
        if first_ms < last_ms:
            return TradePage(page, last_ms)
        rows = await self._drain_millisecond(native, last_ms, page)
        return TradePage(rows, last_ms + 1 if last_ms < end_ms else None, requests=2)

    async def _drain_millisecond(self, native: str, ms: int, head: pl.DataFrame) -> pl.DataFrame:
        """All trades of millisecond ``ms`` when ``head`` (its oldest) filled a page."""
        limit = self.trades_page_limit
        request = build_trades_request(native, ms, ms, limit, newest_first=True)
        tail = parse_trades(await self._get(request))
        overlap = head["trade_id"].is_in(tail["trade_id"].implode()).any()
        if tail.height >= limit and not overlap:
            raise errors.SourceError(
                f"bitfinex has more than {2 * limit} {native} trades in the one millisecond "
                f"{ms}: its REST API cannot page inside a millisecond, so some cannot be "
                "fetched; collect this market live over WebSocket instead"
            )
        return pl.concat([head, tail.reverse()]).unique("trade_id", maintain_order=True)

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        CAPABILITY.require(DataType.BOOK, depth=depth)
        data = await self._get(build_book_request(self.native_symbol(symbol), depth))
        return parse_book(data, now_ns())
