"""``KrakenSource``: Kraken spot pages over REST (candles, trades, book).

Trades are addressed by time: ``since`` (ns, exclusive) returns up to 1000 trades
after it, oldest first. Kraken's own ``last`` cursor is exclusive too, so a page that
ends in the middle of a group of trades sharing one timestamp would lose the rest of
the group. The next page therefore asks again from just before the page's newest
timestamp (one microsecond, more than the 100 ns of Kraken's trade times); the
repeated trades are dropped by the paginator on ``trade_id``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import NS_PER_S, DataType, Span, Symbol, now_ns

from ..base import Endpoints, Source, TradePage
from .capability import CAPABILITY, REST_URL, TRADE_PAGE_LIMIT, WS_URL
from .parse import check_payload, decode_exact, parse_book, parse_candles, parse_trades
from .rest import (
    ERRORS,
    build_asset_pairs_request,
    build_book_request,
    build_candles_request,
    build_trades_request,
)
from .symbols import native_symbol, parse_asset_pairs
from .ws import KrakenWs

__all__ = ["KrakenSource"]

#: How far before a timestamp to re-ask from (trade times carry 100 ns, so 1 µs is safe).
_OVERLAP_NS = 1_000


class KrakenSource(KrakenWs, Source):
    """Kraken spot: https://docs.kraken.com/api/"""

    id: ClassVar[str] = "kraken"
    #: trade_id (7th field): an integer per pair, growing with time; rows from before ids
    #: existed get derived ids, which are not compared
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(REST_URL, WS_URL)
    check_payload = staticmethod(check_payload)
    #: documented error codes -> transient / rate limit / permanent (HTTP client)
    errors = ERRORS

    def __init__(self, http: Any, endpoints: Endpoints | None = None) -> None:
        super().__init__(http, endpoints)
        self._altnames: dict[Symbol, str] = {}

    def native_symbol(self, symbol: Symbol) -> str:
        return self._altnames.get(symbol) or native_symbol(symbol)

    async def fetch_symbols(self) -> set[Symbol] | None:
        path, params = build_asset_pairs_request()
        response = await self.http.get(path, params)
        self._altnames = parse_asset_pairs(response.data)
        return set(self._altnames)

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """Committed bars of ``[start_ts, end_ts)``; only the last 720 bars exist."""
        self.capability.require(DataType.OHLC, span=span, start_ts=start_ts, now_ts=now_ns())
        since_s = start_ts // NS_PER_S - 1  # ``since`` is exclusive: keep the first bar
        path, params = build_candles_request(self.native_symbol(symbol), span, since_s)
        response = await self.http.get(path, params)
        rows = parse_candles(response.data)
        return rows.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page (oldest first). The window is drained when a page reaches ``end_ts``
        or is shorter than asked (it reached the newest trade)."""
        since = int(cursor) if cursor is not None else start_ts - _OVERLAP_NS
        path, params = build_trades_request(self.native_symbol(symbol), since)
        response = await self.http.get(path, params)
        # again from the raw body, keeping the 100 ns trade times orjson's floats round
        rows, last_ns = parse_trades(decode_exact(response.content))
        if rows.height < TRADE_PAGE_LIMIT:
            return TradePage(rows, None)
        newest = int(rows.get_column("ts").max())  # type: ignore[arg-type]
        if newest >= end_ts:
            return TradePage(rows, None)
        following = newest - _OVERLAP_NS
        if following <= since:
            # A full page inside one microsecond: only Kraken's own cursor moves on.
            following = last_ns if last_ns is not None and last_ns > since else newest
        return TradePage(rows, following)

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        self.capability.require(DataType.BOOK, depth=depth)
        path, params = build_book_request(self.native_symbol(symbol), depth)
        response = await self.http.get(path, params)
        return parse_book(response.data, depth, now_ns())
