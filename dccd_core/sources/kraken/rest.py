"""Kraken spot REST: pure request builders and the page-level ``KrakenRest``.

Docs: https://docs.kraken.com/api/docs/rest-api/get-ohlc-data

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

from dccd_core.domain import NS_PER_S, DataType, Span, Symbol, errors, now_ns
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .. import features
from ..base import Endpoints, HttpApi, Request, Source, TradePage
from .capability import (
    BOOK_MAX_DEPTH,
    CAPABILITY,
    REST_URL,
    SPANS,
    TRADE_PAGE_LIMIT,
    WS_URL,
)
from .parse import check_payload, decode_exact, parse_book, parse_candles, parse_trades
from .symbols import native_symbol, parse_symbols

__all__ = [
    "ERRORS",
    "KrakenRest",
    "build_book_request",
    "build_candles_request",
    "build_symbols_request",
    "build_trades_request",
]

#: How far before a timestamp to re-ask from (trade times carry 100 ns, so 1 µs is safe).
_OVERLAP_NS = 1_000

#: Kraken's documented error strings (support.kraken.com, "API error messages";
#: docs.kraken.com spot-errors), ``<severity><category>:<message>``, reported in an
#: ``error`` list that usually comes with HTTP 200.
ERRORS = ErrorTable.of(
    {
        "EService:Unavailable": TRANSIENT,  # the matching engine or API is offline
        "EService:Busy": TRANSIENT,  # request cannot be made at this time (load)
        "EGeneral:Internal error": TRANSIENT,  # an internal error, retry
        "EAPI:Rate limit exceeded": RATE_LIMIT,
        "EGeneral:Too many requests": RATE_LIMIT,
        "EQuery:Unknown asset pair": PERMANENT,
        "EGeneral:Invalid arguments": PERMANENT,
    }
)


def build_candles_request(pair: str, span: Span, since_s: int) -> Request:
    """``/0/public/OHLC?pair=&interval=<minutes>&since=<s>``.

    Kraken answers with at most the 720 most recent bars, whatever ``since`` says.
    """
    if span not in SPANS:
        labels = " ".join(s.label for s in SPANS)
        raise errors.NoCapability(
            f"kraken has no {span} candles: its spans are {labels}; {features.DERIVE_HINT}"
        )
    params: dict[str, str | int] = {"pair": pair, "interval": span.seconds // 60, "since": since_s}
    return Request("/0/public/OHLC", params)


def build_trades_request(pair: str, since_ns: int | None, count: int = TRADE_PAGE_LIMIT) -> Request:
    """``/0/public/Trades?pair=&since=<ns>&count=``: trades after ``since``, oldest first."""
    params: dict[str, str | int] = {"pair": pair, "count": min(count, TRADE_PAGE_LIMIT)}
    if since_ns is not None:
        params["since"] = str(max(0, since_ns))
    return Request("/0/public/Trades", params)


def build_book_request(pair: str, depth: int) -> Request:
    """``/0/public/Depth?pair=&count=``: at most 500 levels a side."""
    if depth > BOOK_MAX_DEPTH:
        raise errors.NoCapability(
            f"kraken serves at most {BOOK_MAX_DEPTH} book levels over REST, asked {depth}; "
            f"use depth {BOOK_MAX_DEPTH} (or the WebSocket book, up to 1000)"
        )
    return Request("/0/public/Depth", {"pair": pair, "count": depth})


def build_symbols_request() -> Request:
    """``/0/public/AssetPairs``: every pair, its altname and wsname."""
    return Request("/0/public/AssetPairs")


class KrakenRest(Source):
    """Kraken spot pages over REST: https://docs.kraken.com/api/"""

    #: trade_id (7th field): an integer per pair, growing with time; rows from before ids
    #: existed get derived ids, which are not compared
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(REST_URL, WS_URL)
    check_payload = staticmethod(check_payload)
    errors = ERRORS

    def __init__(self, http: HttpApi | None, endpoints: Endpoints | None = None) -> None:
        super().__init__(http, endpoints)
        self._altnames: dict[Symbol, str] = {}

    def native_symbol(self, symbol: Symbol) -> str:
        return self._altnames.get(symbol) or native_symbol(symbol)

    async def fetch_symbols(self) -> set[Symbol] | None:
        self._altnames = parse_symbols(await self._get(build_symbols_request()))
        return set(self._altnames)

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """Committed bars of ``[start_ts, end_ts)``; only the last 720 bars exist."""
        self.capability.require(DataType.OHLC, span=span, start_ts=start_ts, now_ts=now_ns())
        since_s = start_ts // NS_PER_S - 1  # ``since`` is exclusive: keep the first bar
        request = build_candles_request(self.native_symbol(symbol), span, since_s)
        rows = parse_candles(await self._get(request))
        return rows.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page (oldest first). The window is drained when a page reaches ``end_ts``
        or is shorter than asked (it reached the newest trade)."""
        since = int(cursor) if cursor is not None else start_ts - _OVERLAP_NS
        response = await self._response(build_trades_request(self.native_symbol(symbol), since))
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
        data = await self._get(build_book_request(self.native_symbol(symbol), depth))
        return parse_book(data, depth, now_ns())
