"""``BitfinexSource``: the page-level methods of the Source contract for Bitfinex v2.

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

from dccd_core.domain import (
    NS_PER_MS,
    DataType,
    SourceError,
    Span,
    Symbol,
    now_ns,
)
from dccd_core.sources.base import Endpoints, Source, TradePage
from dccd_core.sources.columns import empty_frame

from . import parse, rest
from .capability import CANDLES_PAGE_LIMIT, CAPABILITY, TRADES_PAGE_LIMIT
from .symbols import from_native, to_native
from .ws import BitfinexWs

__all__ = ["BitfinexSource"]


class BitfinexSource(BitfinexWs, Source):
    """Bitfinex public v2 API: candles, trades and book over REST, and WebSocket v2."""

    id: ClassVar[str] = "bitfinex"
    #: trade ID: a global integer, growing with time
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(
        rest_url="https://api-pub.bitfinex.com", ws_url="wss://api-pub.bitfinex.com"
    )
    check_payload = staticmethod(parse.check_payload)
    #: documented error codes -> transient / rate limit / permanent (HTTP client)
    errors = rest.ERRORS

    def __init__(self, http: Any, endpoints: Endpoints | None = None) -> None:
        Source.__init__(self, http, endpoints)
        BitfinexWs.__init__(self)
        self.trades_page_limit = TRADES_PAGE_LIMIT
        self._symbols: set[Symbol] | None = None

    # -- markets ---------------------------------------------------------------

    def native_symbol(self, symbol: Symbol) -> str:
        return to_native(symbol)

    async def fetch_symbols(self) -> set[Symbol] | None:
        if self._symbols is None:
            names: list[str] = []
            for kind in ("exchange", "futures"):
                names += parse.parse_pair_list(await self._get(rest.build_pair_list_request(kind)))
            self._symbols = {from_native(n) for n in names}
        return self._symbols

    # -- pages -----------------------------------------------------------------

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        feature = CAPABILITY.require(DataType.OHLC, span=span)
        bars = max(1, -(-(end_ts - span.floor(start_ts)) // span.ns))
        request = rest.build_candles_request(
            self.native_symbol(symbol), span, start_ts, end_ts, min(CANDLES_PAGE_LIMIT, bars)
        )
        frame = parse.parse_candles(await self._get(request, weight=feature.weight))
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page from ``cursor`` (a start ms, inclusive) to the window end.

        The window is drained when a page comes back short: Bitfinex returns up to
        ``limit`` rows, so fewer means nothing else lies before ``end``.
        """
        feature = CAPABILITY.require(DataType.TRADES)
        native = self.native_symbol(symbol)
        limit = self.trades_page_limit
        start_ms = int(cursor) if cursor is not None else start_ts // NS_PER_MS
        end_ms = rest.ceil_ms(end_ts) - 1
        if start_ms > end_ms:
            return TradePage(empty_frame(DataType.TRADES), None, requests=0)
        request = rest.build_trades_request(native, start_ms, end_ms, limit)
        page = parse.parse_trades(await self._get(request, weight=feature.weight))
        if page.height < limit:
            return TradePage(page, None)
        first_ms = int(page["ts"].min()) // NS_PER_MS  # type: ignore[arg-type]
        last_ms = int(page["ts"].max()) // NS_PER_MS  # type: ignore[arg-type]
        if first_ms < last_ms:
            return TradePage(page, last_ms)
        rows = await self._drain_millisecond(native, last_ms, page, feature.weight)
        return TradePage(rows, last_ms + 1 if last_ms < end_ms else None, requests=2)

    async def _drain_millisecond(
        self, native: str, ms: int, head: pl.DataFrame, weight: int
    ) -> pl.DataFrame:
        """All trades of millisecond ``ms`` when ``head`` (its oldest) filled a page."""
        limit = self.trades_page_limit
        request = rest.build_trades_request(native, ms, ms, limit, newest_first=True)
        tail = parse.parse_trades(await self._get(request, weight=weight))
        overlap = head["trade_id"].is_in(tail["trade_id"].implode()).any()
        if tail.height >= limit and not overlap:
            raise SourceError(
                f"bitfinex has more than {2 * limit} {native} trades in the one millisecond "
                f"{ms}: its REST API cannot page inside a millisecond, so some cannot be "
                "fetched; collect this market live over WebSocket instead"
            )
        return pl.concat([head, tail.reverse()]).unique("trade_id", maintain_order=True)

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        feature = CAPABILITY.require(DataType.BOOK, depth=depth)
        request = rest.build_book_request(self.native_symbol(symbol), depth)
        data = await self._get(request, weight=feature.weight)
        return parse.parse_book(data, now_ns())

    # -- helpers ---------------------------------------------------------------

    async def _get(self, request: rest.Request, *, weight: int = 1) -> Any:  # type: ignore[override]
        path, params = request
        response = await self.http.get(path, params, weight=weight)
        data = response.data
        parse.check_payload(data)
        return data
