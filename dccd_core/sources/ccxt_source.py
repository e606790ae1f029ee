"""The generic source: any exchange ccxt knows, candles and trades over REST (+ book, and
funding and open interest history where ccxt has them: ``ccxt_derivatives``).

Used by the registry for every exchange id without a native source. ccxt
(https://docs.ccxt.com) speaks the exchange's wire format; this class drives it one
page at a time under the ``Source`` contract, because ccxt's own pagination loses data
(see ``ccxt_trades``) and its limiter sleeps after every response (it is turned off;
dccd's limiter paces the calls).

ccxt errors are mapped to the dccd tree here and nowhere else::

    ccxt.BadSymbol                          -> UnknownSymbol
    ccxt.NotSupported                       -> NoCapability
    ccxt.RateLimitExceeded / DDoSProtection -> retried, then RateLimited
    ccxt.OperationFailed (NetworkError,     -> retried, then RetryExhausted
      ExchangeNotAvailable, RequestTimeout,
      OnMaintenance, BadResponse)
    ccxt.ExchangeError (other)              -> ExchangeError
    anything else ccxt raises               -> TransportError

Retries follow the transport's ``RetryPolicy`` (full-jitter backoff), since ccxt's
requests do not go through dccd's ``HttpClient``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import ccxt.async_support as ccxt_async
import polars as pl

from dccd_core.domain import (
    NS_PER_MS,
    ConfigError,
    DataType,
    ExchangeError,
    NoCapability,
    RateLimited,
    RetryExhausted,
    Span,
    Symbol,
    TransportError,
    UnexpectedPayload,
    UnknownSymbol,
    now_ns,
)
from dccd_core.transport.retry import DEFAULT_RETRY, RetryPolicy

from .base import Endpoints, Source, TradePage
from .ccxt_derivatives import funding_rows, open_interest_rows, open_interest_timeframes
from .ccxt_exchange import (
    DEFAULT_PAGE_LIMIT,
    create_exchange,
    derive_capability,
    span_timeframes,
    trade_quirks,
)
from .ccxt_frames import book_frame, ohlcv_frame, trades_frame
from .ccxt_trades import TradeCursor, advance, first_cursor, plan
from .columns import ceil_ms, empty_frame

__all__ = ["CcxtSource"]

log = logging.getLogger("dccd.sources.ccxt")
T = TypeVar("T")


class CcxtSource(Source):
    """Any ccxt exchange, by id: ``CcxtSource("bitstamp")``.

    ``endpoints.rest_url`` moves every ccxt API URL to that origin (path kept). It
    has no dccd HTTP client (``http_stats`` is None): ccxt has its own aiohttp session,
    closed by ``aclose()``. ``options`` are merged into ccxt's exchange options (e.g.
    ``{'fetchMarkets': {'types': ['spot']}}`` for Binance).
    """

    id = "ccxt"
    default_endpoints = Endpoints(rest_url="")

    def __init__(
        self,
        exchange_id: str,
        endpoints: Endpoints | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        exchange_id = str(exchange_id).strip().lower()
        self.exchange = create_exchange(
            exchange_id, endpoints.rest_url if endpoints else None, options
        )
        super().__init__(None, endpoints or Endpoints(rest_url=_api_origin(self.exchange)))
        # The source's id is the exchange's, per instance (the base declares a ClassVar).
        vars(self)["id"] = exchange_id
        vars(self)["sequential_trade_ids"] = trade_quirks(exchange_id).id_param is not None
        # venues addressed by integer id (Binance fromId) number trades in time order
        vars(self)["monotonic_trade_ids"] = self.sequential_trade_ids
        self.capability = derive_capability(self.exchange, exchange_id)
        self.quirks = trade_quirks(exchange_id)
        self.retry = retry
        self._timeframes = span_timeframes(self.exchange.timeframes)
        self._markets_lock = asyncio.Lock()
        self._markets_loaded = False
        self._until: dict[str, bool] = {}
        self._oi_timeframes = open_interest_timeframes(self.exchange, self._timeframes)

    # -- lifecycle ---------------------------------------------------------------

    async def aclose(self) -> None:
        """Close ccxt's HTTP session (``async with`` calls this too)."""
        await self.exchange.close()

    # -- markets -----------------------------------------------------------------

    def native_symbol(self, symbol: Symbol) -> str:
        """ccxt's market id (e.g. BTCUSDT); markets must be loaded, else the unified name."""
        market = (self.exchange.markets or {}).get(str(symbol))
        return str(market["id"]) if market else str(symbol)

    async def _load_markets(self) -> dict[str, Any]:
        async with self._markets_lock:
            if not self._markets_loaded:
                await self._call("load markets", self.exchange.load_markets)
                self._markets_loaded = True
        return dict(self.exchange.markets or {})

    async def fetch_symbols(self) -> set[Symbol]:
        """Every market ccxt lists whose unified symbol is a dccd symbol."""
        symbols: set[Symbol] = set()
        for name in await self._load_markets():
            try:
                symbols.add(Symbol.parse(name))
            except ConfigError:
                continue  # options, dated futures and other forms dccd does not store
        return symbols

    async def _market(self, symbol: Symbol) -> str:
        markets = await self._load_markets()
        if str(symbol) not in markets:
            await self.check_symbol(symbol)
            raise UnknownSymbol(f"{self.id} does not list {symbol}")
        return str(symbol)

    # -- pages -------------------------------------------------------------------

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """One ``fetch_ohlcv`` call: bars opening in ``[start_ts, end_ts)``, ohlc schema."""
        feature = self.capability.require(DataType.OHLC, span=span)
        timeframe = self._timeframes[span]
        first = span.floor(start_ts)
        if first < start_ts:
            first += span.ns
        if first >= end_ts:
            return empty_frame(DataType.OHLC)
        bars = -(-(end_ts - first) // span.ns)
        limit = min(bars, feature.page_limit or DEFAULT_PAGE_LIMIT)
        market = await self._market(symbol)
        params = self._until_params("fetch_ohlcv", end_ts)
        data = await self._call(
            f"fetch_ohlcv {symbol} {span}",
            lambda: self.exchange.fetch_ohlcv(
                market, timeframe, since=first // NS_PER_MS, limit=limit, params=dict(params)
            ),
        )
        frame = ohlcv_frame(data, f"{self.id} fetch_ohlcv {symbol} {span}")
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One ``fetch_trades`` call and the cursor of the next (see ``ccxt_trades``)."""
        feature = self.capability.require(DataType.TRADES)
        limit = feature.page_limit or DEFAULT_PAGE_LIMIT
        end_ms = ceil_ms(end_ts)
        current: TradeCursor = cursor if cursor is not None else first_cursor(start_ts, self.quirks)
        request = plan(current, end_ms, limit, self.quirks)
        if request is None:
            return TradePage(empty_frame(DataType.TRADES), None, requests=0)
        market = await self._market(symbol)
        params: dict[str, Any] = {}
        if request.from_id is not None:
            assert self.quirks.id_param is not None
            params[self.quirks.id_param] = request.from_id
        if request.until_ms is not None:
            params["until"] = request.until_ms
        data = await self._call(
            f"fetch_trades {symbol}",
            lambda: self.exchange.fetch_trades(
                market, since=request.since_ms, limit=request.limit, params=dict(params)
            ),
        )
        page = trades_frame(
            data, f"{self.id} fetch_trades {symbol}", numeric_ids=self.sequential_trade_ids
        )
        rows, next_cursor = advance(current, request, page, end_ms, self.quirks, self.id)
        return TradePage(rows, next_cursor)

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        """One ``fetch_order_book`` snapshot, ``depth`` levels a side."""
        self.capability.require(DataType.BOOK, depth=depth)
        market = await self._market(symbol)
        data = await self._call(
            f"fetch_order_book {symbol}",
            lambda: self.exchange.fetch_order_book(market, limit=depth),
        )
        return book_frame(data, depth, now_ns(), f"{self.id} fetch_order_book {symbol}")

    async def fetch_funding(self, symbol: Symbol, start_ts: int, end_ts: int) -> pl.DataFrame:
        """One ``fetch_funding_rate_history`` call from ``start_ts`` (the paginator's
        window holds at most ``page_limit`` hours, so a page answers it whole)."""
        feature = self.capability.require(DataType.FUNDING)
        market = await self._derivative(symbol, DataType.FUNDING)
        what = f"fetch_funding_rate_history {symbol}"
        params = self._until_params("fetch_funding_rate_history", end_ts)
        data = await self._call(
            what,
            lambda: self.exchange.fetch_funding_rate_history(
                market, since=ceil_ms(start_ts), limit=feature.page_limit, params=dict(params)
            ),
        )
        frame = funding_rows(data, f"{self.id} {what}")
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_open_interest(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """One ``fetch_open_interest_history`` call: samples of period ``span`` stamped in
        ``[start_ts, end_ts)`` (a window of at most ``page_limit`` periods)."""
        feature = self.capability.require(DataType.OPEN_INTEREST, span=span)
        market = await self._derivative(symbol, DataType.OPEN_INTEREST)
        what = f"fetch_open_interest_history {symbol} {span}"
        params = self._until_params("fetch_open_interest_history", end_ts)
        data = await self._call(
            what,
            lambda: self.exchange.fetch_open_interest_history(
                market,
                self._oi_timeframes[span],
                since=ceil_ms(start_ts),
                limit=feature.page_limit,
                params=dict(params),
            ),
        )
        frame = open_interest_rows(data, f"{self.id} {what}")
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def _derivative(self, symbol: Symbol, data_type: DataType) -> str:
        """The market of a perpetual ``symbol``; a spot one is refused before a request."""
        if symbol.settle is None:
            raise NoCapability(
                f"{data_type} needs a perpetual symbol like {symbol}:{symbol.quote}, "
                f"not the spot {symbol}"
            )
        return await self._market(symbol)

    # -- helpers -----------------------------------------------------------------

    def describe(self) -> Mapping[str, str]:
        """Provenance: the exchange id, that ccxt served it, and ccxt's version."""
        return {
            "source": self.id,
            "rest_url": self.endpoints.rest_url,
            "via": f"ccxt {ccxt_async.__version__}",
        }

    def _until_params(self, method: str, end_ts: int) -> dict[str, Any]:
        """``{"until": last ms}`` where this exchange's ccxt ``method`` reads the unified
        ``until`` param, else ``{}``.

        About half do; for the rest an unknown ``until`` would be sent to the exchange
        as is, so it is only passed where ccxt's own method reads it.
        """
        if method not in self._until:
            try:
                source = inspect.getsource(getattr(type(self.exchange), method))
                self._until[method] = "until" in source
            except (OSError, TypeError, AttributeError):
                self._until[method] = False
        return {"until": ceil_ms(end_ts) - 1} if self._until[method] else {}

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one ccxt call, retrying transient faults, mapping every ccxt error."""
        faults = 0
        limits = 0
        while True:
            try:
                return await call()
            except ccxt_async.BadSymbol as exc:
                raise UnknownSymbol(f"{self.id} does not list the market of {what}: {exc}") from exc
            except ccxt_async.NotSupported as exc:
                raise NoCapability(f"{self.id} (via ccxt) cannot {what}: {exc}") from exc
            except (ccxt_async.RateLimitExceeded, ccxt_async.DDoSProtection) as exc:
                limits += 1
                if limits >= self.retry.rate_limit_attempts:
                    raise RateLimited(
                        f"{self.id} kept rate-limiting {what} after {limits} tries; "
                        "lower the request rate or retry later"
                    ) from exc
                delay = self.retry.backoff_s(limits)
            except ccxt_async.OperationFailed as exc:
                # NetworkError (ExchangeNotAvailable, OnMaintenance, RequestTimeout, ...),
                # BadResponse and OperationFailed itself: ccxt's "retrying may succeed"
                # branch, e.g. Binance -1000 UNKNOWN (HTTP 500) arrives as OperationFailed
                faults += 1
                if faults >= self.retry.attempts:
                    raise RetryExhausted(
                        f"{self.id} {what} failed {faults} times ({type(exc).__name__}: "
                        f"{_short(exc)}); check the network or {self.endpoints.rest_url}"
                    ) from exc
                delay = self.retry.backoff_s(faults - 1)
            except ccxt_async.ExchangeError as exc:
                raise ExchangeError(f"{self.id} refused {what}: {_short(exc)}") from exc
            except ccxt_async.BaseError as exc:
                raise TransportError(f"{self.id} {what} failed: {_short(exc)}") from exc
            except (TypeError, KeyError, IndexError, ValueError) as exc:
                # ccxt's own parser choked on the response: the wire format changed.
                raise UnexpectedPayload(
                    f"{self.id} {what}: ccxt could not parse the response ({exc!r})"
                ) from exc
            log.debug("%s %s: retry in %.2fs", self.id, what, delay)
            await asyncio.sleep(delay)


def _short(exc: BaseException, width: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= width else text[:width] + "..."


def _api_origin(exchange: Any) -> str:
    """The first URL of ccxt's ``urls['api']``, for provenance."""
    api = exchange.urls.get("api")
    while isinstance(api, dict) and api:
        api = next(iter(api.values()))
    return api if isinstance(api, str) else ""
