"""Binance REST: request builders and the page-level ``BinanceRest``.

Spot (``BTC/USDT``) goes to ``https://api.binance.com/api/v3/...``, USD-M perpetuals
(``BTC/USDT:USDT``) to ``https://fapi.binance.com/fapi/v1/...``. When the REST origin
is overridden (catalog, ``DCCD_BINANCE_REST_URL``, a test fake), both go to that
origin. Each host is metered by its own weight budget.

Trade cursor (``fetch_trades_page``): aggTrades are addressable by time and by id.

* ``None`` / ``("time", t_ms)``: ``startTime=t_ms``, ``endTime`` at most
  ``t_ms + 1h - 1ms`` (Binance refuses wider time windows) and never past the window.
  A full page continues by id; a short page proves that slice drained: continue by id
  after its last trade, or with the next hour if it was empty.
* ``("id", n)``: ``fromId=n``. Ids are consecutive, so continuing from ``last + 1``
  never skips trades that share a millisecond across a page boundary (paging by
  ``last ts + 1 ms`` would). The window is drained once a page reaches ``end_ts`` or
  comes back short (the newest trade was reached).
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import DataType, Span, Symbol, Transport, errors, now_ns
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .. import columns
from ..base import Endpoints, Request, Source, TradePage
from .capability import (
    AGG_TRADES_LIMIT,
    AGG_TRADES_MAX_WINDOW_MS,
    CAPABILITY,
    FUTURES_BOOK_DEPTHS,
    FUTURES_WEIGHT_PER_MINUTE,
    INTERVALS,
    KLINES_LIMIT,
    USAGE_HEADER,
    futures_weight,
    spot_weight,
)
from .funding import build_funding_request, parse_funding
from .open_interest import build_open_interest_request, parse_open_interest
from .parse import check_payload, parse_book, parse_candles, parse_trades, parse_trades_page
from .prices import build_price_candles_request, parse_price_candles
from .symbols import MARKETS, Market, market_of, native_symbol, parse_symbols

__all__ = [
    "ERRORS",
    "FUTURES_REST_URL",
    "SPOT_REST_URL",
    "BinanceRest",
    "build_book_request",
    "build_candles_request",
    "build_first_trade_request",
    "build_symbols_request",
    "build_trades_request",
    "on_host",
]

SPOT_REST_URL = "https://api.binance.com"
FUTURES_REST_URL = "https://fapi.binance.com"

#: Binance's documented error codes (developers.binance.com, "Error codes for Binance";
#: the same 10xx/11xx codes on spot and USD-M futures). 10xx are server or network
#: issues: Binance says a 5xx means "execution status UNKNOWN", never a failure.
ERRORS = ErrorTable.of(
    {
        -1000: TRANSIENT,  # UNKNOWN: an unknown error occurred while processing the request
        -1001: TRANSIENT,  # DISCONNECTED: internal error; unable to process, please try again
        -1003: RATE_LIMIT,  # TOO_MANY_REQUESTS: too much request weight used (or banned)
        -1004: TRANSIENT,  # SERVER_BUSY: server is busy, please wait and try again
        -1006: TRANSIENT,  # UNEXPECTED_RESP: unexpected response from the message bus
        -1007: TRANSIENT,  # TIMEOUT: timeout waiting for the backend; status unknown
        -1008: TRANSIENT,  # SERVER_BUSY: overloaded, please try again in a few minutes
        -1015: RATE_LIMIT,  # TOO_MANY_ORDERS
        -1016: PERMANENT,  # SERVICE_SHUTTING_DOWN: this service is no longer available
        -1100: PERMANENT,  # ILLEGAL_CHARS
        -1101: PERMANENT,  # TOO_MANY_PARAMETERS
        -1102: PERMANENT,  # MANDATORY_PARAM_EMPTY_OR_MALFORMED
        -1103: PERMANENT,  # UNKNOWN_PARAM
        -1104: PERMANENT,  # UNREAD_PARAMETERS
        -1105: PERMANENT,  # PARAM_EMPTY
        -1106: PERMANENT,  # PARAM_NOT_REQUIRED
        -1120: PERMANENT,  # BAD_INTERVAL
        -1121: PERMANENT,  # BAD_SYMBOL: invalid symbol
        -1127: PERMANENT,  # MORE_THAN_XX_HOURS: lookup interval is too big
        -1128: PERMANENT,  # OPTIONAL_PARAMS_BAD_COMBO
        -1130: PERMANENT,  # INVALID_PARAMETER
    }
)

_PREFIX: dict[Market, str] = {"spot": "/api/v3", "usdm": "/fapi/v1"}


def _weight(market: Market, endpoint: str, limit: int = 0) -> int:
    return spot_weight(endpoint, limit) if market == "spot" else futures_weight(endpoint, limit)


def on_host(request: Request, rest_url: str) -> Request:
    """``request`` as an absolute URL: a futures path (``/fapi``) on Binance's futures
    host, everything else on ``rest_url``; an overridden origin (catalog,
    ``DCCD_BINANCE_REST_URL``, a test fake) serves both markets."""
    origin = rest_url.rstrip("/")
    if origin == SPOT_REST_URL and request.path.startswith((_PREFIX["usdm"], "/futures/data")):
        origin = FUTURES_REST_URL
    return request.on_origin(origin)


def build_candles_request(symbol: Symbol, span: Span, start_ts: int, end_ts: int) -> Request:
    """Klines opening in ``[start_ts, end_ts)``: ``startTime``/``endTime`` are inclusive ms."""
    market = market_of(symbol)
    bars = max(1, -(-(end_ts - start_ts) // span.ns))
    limit = min(KLINES_LIMIT, bars)
    params = {
        "symbol": native_symbol(symbol),
        "interval": INTERVALS[span],
        "startTime": str(columns.ceil_ms(start_ts)),
        "endTime": str(columns.ceil_ms(end_ts) - 1),
        "limit": str(limit),
    }
    return Request(f"{_PREFIX[market]}/klines", params, _weight(market, "klines", limit))


def build_trades_request(
    symbol: Symbol, end_ts: int, cursor: tuple[str, int] | None, start_ts: int
) -> Request:
    """One aggTrades page for the cursor (see the module docstring)."""
    market = market_of(symbol)
    params = {"symbol": native_symbol(symbol), "limit": str(AGG_TRADES_LIMIT)}
    if cursor is not None and cursor[0] == "id":
        params["fromId"] = str(cursor[1])
    else:
        start_ms = cursor[1] if cursor is not None else columns.ceil_ms(start_ts)
        end_ms = min(start_ms + AGG_TRADES_MAX_WINDOW_MS, columns.ceil_ms(end_ts) - 1)
        params["startTime"] = str(start_ms)
        params["endTime"] = str(max(end_ms, start_ms))
    return Request(f"{_PREFIX[market]}/aggTrades", params, _weight(market, "aggTrades"))


def build_first_trade_request(symbol: Symbol) -> Request:
    """The first aggregate trade ever (``fromId=0``, one row)."""
    market = market_of(symbol)
    params = {"symbol": native_symbol(symbol), "fromId": "0", "limit": "1"}
    return Request(f"{_PREFIX[market]}/aggTrades", params, _weight(market, "aggTrades"))


def build_book_request(symbol: Symbol, depth: int) -> Request:
    """Order book with ``limit`` = depth."""
    market = market_of(symbol)
    CAPABILITY.require(DataType.BOOK, Transport.REST, depth=depth, history=False)
    if market == "usdm" and depth not in FUTURES_BOOK_DEPTHS:
        raise errors.NoCapability(
            f"binance USD-M futures have no book depth {depth}: their depths are "
            f"{', '.join(map(str, FUTURES_BOOK_DEPTHS))}"
        )
    params = {"symbol": native_symbol(symbol), "limit": str(depth)}
    return Request(f"{_PREFIX[market]}/depth", params, _weight(market, "depth", depth))


def build_symbols_request(market: Market) -> Request:
    """``exchangeInfo`` of one market: every symbol it lists."""
    return Request(f"{_PREFIX[market]}/exchangeInfo", {}, _weight(market, "exchangeInfo"))


class BinanceRest(Source):
    """Binance spot and USD-M perpetuals over REST (page-level; see ``base.Source``)."""

    #: aggregate trade ids are consecutive integers, growing with time
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(
        SPOT_REST_URL, "wss://stream.binance.com:9443"
    )
    sequential_trade_ids: ClassVar[bool] = True
    #: the header the registry's limiter reads to slow down before the limit.
    usage_header: ClassVar[str | None] = USAGE_HEADER
    #: the futures host has a budget of its own
    extra_origins: ClassVar[dict[str, int]] = {FUTURES_REST_URL: FUTURES_WEIGHT_PER_MINUTE}
    check_payload = staticmethod(check_payload)
    errors = ERRORS
    native_symbol = staticmethod(native_symbol)
    funding_wire = (build_funding_request, parse_funding)
    price_candles_wire = (build_price_candles_request, parse_price_candles)
    open_interest_wire = (build_open_interest_request, parse_open_interest)

    async def _fetch(self, request: Request) -> Any:
        """``request`` on the host of its market (see ``on_host``)."""
        return await self._get(on_host(request, self.endpoints.rest_url))

    _get_window = _fetch

    # -- markets ---------------------------------------------------------------

    async def _market_symbols(self, market: Market) -> set[Symbol]:
        async def load() -> set[Symbol]:
            return parse_symbols(await self._fetch(build_symbols_request(market)), market)

        return await self._listing(market, load)

    async def fetch_symbols(self) -> set[Symbol] | None:
        """Spot and USD-M perpetual markets from both ``exchangeInfo`` (cached)."""
        found: set[Symbol] = set()
        for market in MARKETS:
            found |= await self._market_symbols(market)
        return found

    async def check_symbol(self, symbol: Symbol) -> None:
        """Ask only the symbol's own market (one ``exchangeInfo``, not a data page)."""
        self._check_listed(symbol, await self._market_symbols(market_of(symbol)))

    # -- pages -----------------------------------------------------------------

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        data = await self._fetch(build_candles_request(symbol, span, start_ts, end_ts))
        return parse_candles(data)  # the paginator clips, after the plausibility check

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        request = build_trades_request(symbol, end_ts, cursor, start_ts)
        parsed = parse_trades_page(await self._fetch(request), origin=f"binance {symbol}")
        rows = parsed.rows

        def page(next_cursor: tuple[str, int] | None) -> TradePage:
            return TradePage(
                rows,
                next_cursor,
                replayed=parsed.replayed,
                first_trade_ids=parsed.first_trade_ids,
                last_trade_id=parsed.last_trade_id,
            )

        # judged on what Binance sent: a dropped replay does not make a page short
        full = parsed.received >= AGG_TRADES_LIMIT
        last_id = parsed.last_agg_id
        if rows.height and int(rows.get_column("ts")[-1]) >= end_ts:
            return page(None)
        if "startTime" in request.params:
            slice_end_ms = int(request.params["endTime"])
            if full and last_id is not None:
                return page(("id", last_id + 1))
            if last_id is not None:
                if slice_end_ms >= columns.ceil_ms(end_ts) - 1:
                    return page(None)
                return page(("id", last_id + 1))
            if slice_end_ms >= columns.ceil_ms(end_ts) - 1:
                return page(None)
            return page(("time", slice_end_ms + 1))
        if not full or last_id is None:
            return page(None)  # reached the newest trade
        return page(("id", last_id + 1))

    def cursor_at_trade_id(self, trade_id: int) -> tuple[str, int]:
        """The cursor of the page starting at aggregate id ``trade_id`` (``fromId``).

        Aggregate ids are consecutive, so the paginator can address pages by id block
        and fetch them concurrently without a seam costing a request.
        """
        return ("id", int(trade_id))

    async def fetch_first_trade_ts(self, symbol: Symbol) -> int | None:
        """The first aggregate trade ever (``fromId=0``)."""
        rows = parse_trades(await self._fetch(build_first_trade_request(symbol)))
        return int(rows.get_column("ts")[0]) if rows.height else None

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        data = await self._fetch(build_book_request(symbol, depth))
        return parse_book(data, depth, now_ns())
