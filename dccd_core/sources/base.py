"""The contract every exchange source implements.

A source knows one exchange's wire format: how to ask for one page and how to turn
the answer into the fixed Arrow/polars schema. It never loops, sleeps, retries,
deduplicates or writes: paging, concurrency and commits live once in
``dccd_core.transport.paginate`` and ``dccd_core.operations``; retries, backoff and
rate limits live once in ``dccd_core.transport.http``.

Contract of the page methods (the paginators rely on it):

* ``fetch_candles(symbol, span, start_ts, end_ts)`` returns the closed-or-open bars
  whose open time is in ``[start_ts, end_ts)``; the caller never asks for more than
  ``feature.page_limit`` bars in one window. Rows sorted by ts, ohlc schema. Returning
  fewer bars than the window holds is normal (the exchange has holes).
* ``fetch_trades_page(symbol, start_ts, end_ts, cursor)`` returns one page of the trades
  of ``[start_ts, end_ts)`` plus the cursor for the next page, or ``next_cursor=None``
  once the window is drained. ``cursor=None`` asks for the first page of the window.
  The source decides *how* its exchange pages (by id, by time, backwards), the paginator
  decides *when* to ask. Rows may spill outside the window; the paginator clips them.
  A short or empty page ends the window only when the exchange's semantics prove there
  is nothing more before ``end_ts`` (e.g. a by-id page that reached the newest trade).
* ``fetch_book(symbol, depth)`` returns one snapshot in the book schema.
* ``fetch_mark_candles`` / ``fetch_index_candles`` (same arguments as ``fetch_candles``)
  return the mark / index price bars of a perpetual in the same way (volumes null); an
  exchange implements both as ``fetch_price_candles(data_type, ...)``;
  ``fetch_open_interest`` (same arguments) the open-interest samples of period ``span``.
* ``fetch_funding(symbol, start_ts, end_ts)`` returns the funding rows whose funding time
  is in ``[start_ts, end_ts)`` (at most one page: the caller's window holds at most
  ``feature.page_limit`` hours), funding schema, any order.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import polars as pl

from dccd_core.domain import (
    Capability,
    DataType,
    NoCapability,
    Span,
    Symbol,
    UnknownSymbol,
    check_rows,
    check_trade_id_order,
)
from dccd_core.transport.errors import ErrorTable
from dccd_core.transport.http import HttpStats, JsonResponse
from dccd_core.transport.pages import TradePage

if TYPE_CHECKING:
    from .archives.http_reader import HttpArchiveReader

__all__ = ["Endpoints", "HttpApi", "Request", "Source", "TradePage"]


class HttpApi(Protocol):
    """What a source needs of its HTTP client (``dccd_core.transport.HttpClient``).

    Sources only ask for JSON documents; retries, rate limits and the exchange's
    error table are the client's business, so this is all a source may call.
    """

    stats: HttpStats

    async def get(
        self, path_or_url: str, params: Mapping[str, Any] | None = None, *, weight: int = 1
    ) -> JsonResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Request:
    """One REST call as the exchange modules describe it: built by a pure
    ``build_*_request`` function (testable without a network), sent by ``Source._get``.

    ``path`` is a path on the source's REST origin or an absolute URL (Binance's
    futures host); ``weight`` is what the exchange charges for it.
    """

    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    weight: int = 1

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``path, params, weight`` (a builder's result read in one line)."""
        return iter((self.path, self.params, self.weight))

    def on_origin(self, origin: str) -> Request:
        """The same request to another origin (an absolute URL the client meters apart)."""
        return replace(self, path=f"{origin.rstrip('/')}{self.path}")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a source talks to: REST and WebSocket origins (no path)."""

    rest_url: str
    ws_url: str | None = None


def _checked_rows(
    method: Callable[..., Awaitable[pl.DataFrame]], data_type: DataType
) -> Callable[..., Awaitable[pl.DataFrame]]:
    @functools.wraps(method)
    async def fetch(self: Source, *args: Any, **kwargs: Any) -> pl.DataFrame:
        return self._plausible(await method(self, *args, **kwargs), data_type)

    return fetch


def _checked_trades(
    method: Callable[..., Awaitable[TradePage]],
) -> Callable[..., Awaitable[TradePage]]:
    @functools.wraps(method)
    async def fetch(self: Source, *args: Any, **kwargs: Any) -> TradePage:
        page = await method(self, *args, **kwargs)
        self._plausible(page.rows, DataType.TRADES)
        if self.monotonic_trade_ids:
            check_trade_id_order(page.rows, origin=self.id)
        return page

    return fetch


#: A series' request builder and its parser (see ``Source.funding_wire``).
SeriesWire = tuple[Callable[..., Request], Callable[..., pl.DataFrame]]


class Source(ABC):
    """One exchange. Subclasses declare ``id``, ``capability``, default endpoints.

    Every page a subclass's ``fetch_candles`` / ``fetch_trades_page`` / ``fetch_book``
    returns passes ``check_rows`` (plausible timestamps, finite positive prices, known
    sides; trade ids rising with time where ``monotonic_trade_ids``) on its way out:
    garbage from an exchange is refused here, once for all sources and all callers,
    before a paginator or the store can see it.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "capability" in own and "id" not in own:  # an exchange is named once
            cls.id = own["capability"].exchange
        if "fetch_candles" in own:
            cls.fetch_candles = _checked_rows(own["fetch_candles"], DataType.OHLC)  # type: ignore[method-assign,assignment]
        if "fetch_book" in own:
            cls.fetch_book = _checked_rows(own["fetch_book"], DataType.BOOK)  # type: ignore[method-assign,assignment]
        if "fetch_open_interest" in own:
            cls.fetch_open_interest = _checked_rows(  # type: ignore[method-assign,assignment]
                own["fetch_open_interest"], DataType.OPEN_INTEREST
            )
        if "fetch_funding" in own:
            cls.fetch_funding = _checked_rows(own["fetch_funding"], DataType.FUNDING)  # type: ignore[method-assign,assignment]
        if "fetch_trades_page" in own:
            cls.fetch_trades_page = _checked_trades(own["fetch_trades_page"])  # type: ignore[method-assign,assignment]

    #: the exchange id; by default the ``capability``'s exchange
    id: ClassVar[str]
    capability: Capability
    default_endpoints: ClassVar[Endpoints]
    #: True where trade ids are consecutive integers (Binance aggTrades), so the
    #: paginator can prove there is no gap at the seams of concurrent sub-windows.
    sequential_trade_ids: ClassVar[bool] = False
    #: True where the exchange's trade ids are integers that grow with time (declared
    #: per exchange from its API, never guessed from the id text): a page, or a seam
    #: between pages, with a greater id at an earlier time is refused, never stored.
    monotonic_trade_ids: ClassVar[bool] = False
    #: Only test doubles with synthetic epoch-relative data turn this off.
    check_plausibility: ClassVar[bool] = True
    #: The exchange's documented error codes -> transient / rate limit / permanent,
    #: applied by the HTTP client to every error body (``transport/errors.py``).
    errors: ClassVar[ErrorTable | None] = None
    #: Response header reporting the weight used so far (Binance), for the limiter.
    usage_header: ClassVar[str | None] = None
    #: Other REST origins the source calls by absolute URL, each metered by its own
    #: weight budget per minute (Binance's USD-M futures host); the registry gives each
    #: a limiter of its own. Requests to ``endpoints.rest_url`` use ``capability``'s.
    extra_origins: ClassVar[Mapping[str, int]] = {}
    #: The derivatives series the exchange pages by fixed time windows, each as its
    #: ``(build_request, parse)`` (``<x>/funding.py``, ``prices.py``, ``open_interest.py``):
    #: ``fetch_funding`` / ``fetch_price_candles`` / ``fetch_open_interest`` fetch one page
    #: with them (the paginator clips it to ``[start_ts, end_ts)``). None: not served.
    funding_wire: ClassVar[SeriesWire | None] = None
    price_candles_wire: ClassVar[SeriesWire | None] = None
    open_interest_wire: ClassVar[SeriesWire | None] = None
    #: The reader of the exchange's bulk-file archives (``sources/archives``) and their
    #: default origin; None where the exchange publishes none. Built by
    #: ``registry.build_archive_reader`` (origin overridable like REST).
    archive_reader_class: ClassVar[type[HttpArchiveReader] | None] = None
    default_archive_url: ClassVar[str | None] = None

    def __init__(self, http: HttpApi | None, endpoints: Endpoints | None = None) -> None:
        # ``http`` is bound to ``endpoints.rest_url``; None only for ccxt (own session).
        self._http = http
        self.endpoints = endpoints or self.default_endpoints
        self._listings: dict[Hashable, set[Symbol]] = {}

    @property
    def http(self) -> HttpApi:
        """The HTTP client; a source built without one (ccxt) has no REST pages of ours."""
        if self._http is None:
            raise TypeError(f"{self.id} source has no dccd HTTP client")
        return self._http

    @property
    def http_stats(self) -> HttpStats | None:
        """Requests, retries and rate-limit pauses so far (None: not a dccd client)."""
        return self._http.stats if self._http is not None else None

    @staticmethod
    def check_payload(data: Any) -> None:
        """Raise on a body that carries an error at HTTP 200 (OKX/Bybit ``code``).

        Run once per response by the HTTP client (``registry.build_source`` hands it
        over), never again by the source.
        """
        return None

    async def _response(self, request: Request) -> JsonResponse:
        """Send one request (retries, rate limits and error bodies: the client's job)."""
        return await self.http.get(request.path, request.params, weight=request.weight)

    async def _get(self, request: Request) -> Any:
        """The decoded JSON body of one request."""
        return (await self._response(request)).data

    # -- lifecycle -------------------------------------------------------------

    async def aclose(self) -> None:
        """Release the connections this source owns (its HTTP client's pool).

        The one way to close a source: ``await source.aclose()`` or ``async with``.
        """
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- markets ---------------------------------------------------------------

    @abstractmethod
    def native_symbol(self, symbol: Symbol) -> str:
        """The exchange's own name for ``symbol`` (BTCUSDT, XBTUSD, tBTCUSD...)."""

    async def fetch_symbols(self) -> set[Symbol] | None:
        """Every symbol the exchange lists, or None where it cannot be known cheaply."""
        return None

    async def check_symbol(self, symbol: Symbol) -> None:
        """Raise ``UnknownSymbol`` before any page is fetched for a market that does not exist."""
        known = await self.fetch_symbols()
        if known is not None:
            self._check_listed(symbol, known)

    def _check_listed(self, symbol: Symbol, known: set[Symbol]) -> None:
        """``UnknownSymbol`` naming up to eight listed markets of the same base."""
        if symbol not in known:
            close = sorted(str(s) for s in known if s.base == symbol.base)[:8]
            hint = f"; {symbol.base} markets: {', '.join(close)}" if close else ""
            raise UnknownSymbol(f"{self.id} does not list {symbol}{hint}")

    async def _listing(
        self, key: Hashable, load: Callable[[], Awaitable[set[Symbol]]]
    ) -> set[Symbol]:
        """The symbols ``load`` lists, asked once per source and ``key`` (a listing is
        a few heavy requests and changes rarely within one run)."""
        if key not in self._listings:
            self._listings[key] = await load()
        return self._listings[key]

    async def _listed_in(
        self, requests: Iterable[Request], parse: Callable[[Any], set[Symbol]]
    ) -> set[Symbol]:
        """Every market of several listings (spot pairs, perpetuals), asked once."""

        async def load() -> set[Symbol]:
            found: set[Symbol] = set()
            for request in requests:
                found |= parse(await self._get(request))
            return found

        return await self._listing("all", load)

    # -- pages -----------------------------------------------------------------

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """Bars opening in ``[start_ts, end_ts)`` (at most one page), ohlc schema."""
        raise NoCapability(f"{self.id} has no candle endpoint")

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page of trades of ``[start_ts, end_ts)`` and the next cursor."""
        raise NoCapability(f"{self.id} has no trades endpoint")

    async def fetch_first_trade_ts(self, symbol: Symbol) -> int | None:
        """The ts of the exchange's first trade where it can be asked directly, else None
        (the caller then bisects with ``fetch_trades_page``)."""
        return None

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        """One order-book snapshot, book schema, levels 0 = best."""
        raise NoCapability(f"{self.id} has no order-book endpoint")

    async def fetch_price_candles(
        self, data_type: DataType, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """One page of mark (``DataType.MARK``) or index price bars (``price_candles_wire``);
        callers use ``fetch_mark_candles`` / ``fetch_index_candles`` (checked)."""
        if self.price_candles_wire is None:
            raise NoCapability(f"{self.id} has no {data_type}-price candle endpoint")
        build, parse = self.price_candles_wire
        request = build(data_type, symbol, span, start_ts, end_ts)
        return parse(await self._get_window(request), data_type)

    async def _checked_price_candles(
        self, data_type: DataType, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """``fetch_price_candles`` once ``check_rows`` passed its page."""
        rows = await self.fetch_price_candles(data_type, symbol, span, start_ts, end_ts)
        return self._plausible(rows, data_type)

    #: Mark-price (index-price) bars opening in ``[start_ts, end_ts)`` (one page), volumes
    #: null: ``(symbol, span, start_ts, end_ts) -> rows``.
    fetch_mark_candles = functools.partialmethod(_checked_price_candles, DataType.MARK)
    fetch_index_candles = functools.partialmethod(_checked_price_candles, DataType.INDEX)

    def _plausible(self, rows: pl.DataFrame, data_type: DataType) -> pl.DataFrame:
        """``rows`` once ``check_rows`` passed them: every page method's exit check."""
        if self.check_plausibility:
            check_rows(rows, data_type, origin=self.id)
        return rows

    async def fetch_open_interest(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """Open-interest samples of period ``span`` stamped in ``[start_ts, end_ts)``."""
        if self.open_interest_wire is None:
            raise NoCapability(f"{self.id} has no open-interest history endpoint")
        build, parse = self.open_interest_wire
        rows = parse(await self._get_window(build(symbol, span, start_ts, end_ts)))
        return self._plausible(rows, DataType.OPEN_INTEREST)

    def span_page(self, data_type: DataType) -> Callable[..., Awaitable[pl.DataFrame]]:
        """The page method of a type paged by windows of ``page_limit`` spans:
        ``(symbol, span, start_ts, end_ts) -> rows`` (candles, mark, index, open interest)."""
        return {
            DataType.OHLC: self.fetch_candles,
            DataType.MARK: self.fetch_mark_candles,
            DataType.INDEX: self.fetch_index_candles,
            DataType.OPEN_INTEREST: self.fetch_open_interest,
        }[data_type]

    async def fetch_funding(self, symbol: Symbol, start_ts: int, end_ts: int) -> pl.DataFrame:
        """Funding rows with a funding time in ``[start_ts, end_ts)`` (one page)."""
        if self.funding_wire is None:
            raise NoCapability(f"{self.id} has no funding-rate history endpoint")
        build, parse = self.funding_wire
        rows = parse(await self._get_window(build(symbol, start_ts, end_ts)))
        return self._plausible(rows, DataType.FUNDING)

    async def _get_window(self, request: Request) -> Any:
        """One window page's body (Binance sends it to its market's host)."""
        return await self._get(request)

    # -- helpers ---------------------------------------------------------------

    def describe(self) -> Mapping[str, str]:
        """Provenance written into Parquet footers."""
        return {"source": self.id, "rest_url": self.endpoints.rest_url}

    def supports(self, data_type: DataType) -> bool:
        """Whether any transport serves ``data_type``."""
        return any(f.data_type is data_type for f in self.capability.features)
