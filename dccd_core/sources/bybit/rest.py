"""Bybit v5 REST: request builders and the page-level ``BybitSource``.

The source asks for one page and parses it; paging, retries and rate limits live in
the core (``transport/paginate.py``, ``transport/http.py``).
Docs: https://bybit-exchange.github.io/docs/v5/market/kline
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import DataType, Span, Symbol, Transport, errors, iso_datetime, ns_to_ms
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .. import columns
from ..base import Endpoints, Request, Source, TradePage
from .capability import (
    CAPABILITY,
    INTERVALS,
    KLINE_LIMIT,
    TRADES_LIMIT_DERIVATIVES,
    TRADES_LIMIT_SPOT,
)
from .funding import build_funding_request, parse_funding
from .open_interest import build_open_interest_request, parse_open_interest
from .parse import check_payload, parse_book, parse_candles, parse_trades
from .prices import build_price_candles_request, parse_price_candles
from .symbols import CATEGORIES, category_of, is_inverse, native_symbol, parse_symbols

__all__ = [
    "ERRORS",
    "BybitRest",
    "build_book_request",
    "build_candles_request",
    "build_symbols_request",
    "build_trades_request",
]

#: Bybit v5's documented ``retCode`` values (bybit-exchange.github.io/docs/v5/error and
#: /rate-limit); errors mostly arrive inside an HTTP 200 body.
ERRORS = ErrorTable.of(
    {
        10000: TRANSIENT,  # server timeout
        10001: PERMANENT,  # request parameter error (also "Not supported symbols")
        10002: TRANSIENT,  # request time outside the time window: a fresh request may pass
        10006: RATE_LIMIT,  # "Too many visits!": the API rate limit
        10016: TRANSIENT,  # server error / service restarting
        10017: PERMANENT,  # route not found
        10018: RATE_LIMIT,  # exceeded the IP rate limit
        10029: PERMANENT,  # the requested symbol is invalid
        10429: RATE_LIMIT,  # system level frequency protection
        110023: PERMANENT,  # unknown symbol (see parse.check_payload)
        170121: PERMANENT,  # invalid symbol (spot)
    }
)

#: instruments-info pages followed at most (linear lists ~600 markets at 1000 a page).
_MAX_INSTRUMENT_PAGES = 10


def build_candles_request(symbol: Symbol, span: Span, start_ts: int, end_ts: int) -> Request:
    """``/v5/market/kline`` for bars opening in ``[start_ts, end_ts)``.

    Bybit's ``start``/``end`` (ms) are both inclusive, so ``end`` is the last ms
    before ``end_ts``.
    """
    CAPABILITY.require(DataType.OHLC, Transport.REST, span=span, history=False)
    params = {
        "category": category_of(symbol),
        "symbol": native_symbol(symbol),
        "interval": INTERVALS[span],
        "start": str(ns_to_ms(start_ts)),
        "end": str(columns.ceil_ms(end_ts) - 1),
        "limit": str(KLINE_LIMIT),
    }
    return Request("/v5/market/kline", params)


def build_trades_request(symbol: Symbol) -> Request:
    """``/v5/market/recent-trade``: the latest trades, the most the category allows."""
    category = category_of(symbol)
    limit = TRADES_LIMIT_SPOT if category == "spot" else TRADES_LIMIT_DERIVATIVES
    params = {"category": category, "symbol": native_symbol(symbol), "limit": str(limit)}
    return Request("/v5/market/recent-trade", params)


def build_book_request(symbol: Symbol, depth: int) -> Request:
    """``/v5/market/orderbook`` with ``limit`` = depth (spot <= 200, derivatives <= 500)."""
    CAPABILITY.require(DataType.BOOK, Transport.REST, depth=depth, history=False)
    params = {"category": category_of(symbol), "symbol": native_symbol(symbol), "limit": str(depth)}
    return Request("/v5/market/orderbook", params)


def build_symbols_request(category: str, cursor: str | None = None) -> Request:
    """``/v5/market/instruments-info`` for one category (spot ignores limit/cursor)."""
    params = {"category": category, "limit": "1000"}
    if cursor:
        params["cursor"] = cursor
    return Request("/v5/market/instruments-info", params)


class BybitRest(Source):
    """Bybit v5 over REST: spot (``BTC/USDT``), linear (``BTC/USDT:USDT``) and inverse
    (``BTC/USD:BTC``) perpetuals.

    Trade ids (``execId``) are UUIDs and REST serves only the latest page: not
    ``monotonic_trade_ids``.
    """

    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(
        "https://api.bybit.com", "wss://stream.bybit.com"
    )
    check_payload = staticmethod(check_payload)
    errors = ERRORS
    funding_wire = (build_funding_request, parse_funding)
    price_candles_wire = (build_price_candles_request, parse_price_candles)
    open_interest_wire = (build_open_interest_request, parse_open_interest)

    native_symbol = staticmethod(native_symbol)

    async def fetch_symbols(self) -> set[Symbol] | None:
        """Trading spot pairs and perpetuals of all three categories (cached)."""
        return await self._listing("all", self._load_symbols)

    async def _load_symbols(self) -> set[Symbol]:
        symbols: set[Symbol] = set()
        for category in CATEGORIES:
            cursor: str | None = None
            for _ in range(_MAX_INSTRUMENT_PAGES):
                data = await self._get(build_symbols_request(category, cursor))
                found, cursor = parse_symbols(data, category)
                symbols |= found
                if cursor is None or category == "spot":
                    break
        return symbols

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        data = await self._get(build_candles_request(symbol, span, start_ts, end_ts))
        frame = parse_candles(data, inverse=is_inverse(symbol))
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """The latest trades only: Bybit's REST cannot page trades into the past, so the
        page always ends the window (the capability refuses history before this)."""
        request = build_trades_request(symbol)
        rows = parse_trades(await self._get(request), inverse=is_inverse(symbol))
        full = rows.height >= int(request.params["limit"])
        if full and int(rows.get_column("ts").min()) > start_ts:  # type: ignore[arg-type]
            # The window reaches further back than Bybit's latest page: what lies
            # between cannot be fetched. Say so (a stream records it as an unhealed
            # gap in coverage) instead of returning a page that looks complete.
            raise errors.SourceError(
                f"bybit keeps only its latest {rows.height} trades over REST, reaching back "
                f"to {iso_datetime(int(rows.get_column('ts').min()))}; the trades since "  # type: ignore[arg-type]
                f"{iso_datetime(start_ts)} before that cannot be fetched (no trade history)"
            )
        return TradePage(rows, None)

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        data = await self._get(build_book_request(symbol, depth))
        return parse_book(data, depth, inverse=is_inverse(symbol))
