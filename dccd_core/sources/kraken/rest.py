"""Request builders for Kraken's public REST endpoints: (path, params) pairs.

Docs: https://docs.kraken.com/api/docs/rest-api/get-ohlc-data
"""

from __future__ import annotations

from dccd_core.domain import NoCapability, Span
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .capability import BOOK_MAX_DEPTH, SPANS, TRADE_PAGE_LIMIT

__all__ = [
    "ERRORS",
    "Request",
    "build_asset_pairs_request",
    "build_book_request",
    "build_candles_request",
    "build_trades_request",
]

Request = tuple[str, dict[str, str | int]]

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
        raise NoCapability(
            f"kraken has no {span} candles: its spans are {labels}; "
            "derive candles from trades (catalog: list the span under `derive:` "
            "of a dataset with trades in data_types, e.g. derive: [4h])"
        )
    return "/0/public/OHLC", {"pair": pair, "interval": span.seconds // 60, "since": since_s}


def build_trades_request(pair: str, since_ns: int | None, count: int = TRADE_PAGE_LIMIT) -> Request:
    """``/0/public/Trades?pair=&since=<ns>&count=``: trades after ``since``, oldest first."""
    params: dict[str, str | int] = {"pair": pair, "count": min(count, TRADE_PAGE_LIMIT)}
    if since_ns is not None:
        params["since"] = str(max(0, since_ns))
    return "/0/public/Trades", params


def build_book_request(pair: str, depth: int) -> Request:
    """``/0/public/Depth?pair=&count=``: at most 500 levels a side."""
    if depth > BOOK_MAX_DEPTH:
        raise NoCapability(
            f"kraken serves at most {BOOK_MAX_DEPTH} book levels over REST, asked {depth}; "
            f"use depth {BOOK_MAX_DEPTH} (or the WebSocket book, up to 1000)"
        )
    return "/0/public/Depth", {"pair": pair, "count": depth}


def build_asset_pairs_request() -> Request:
    """``/0/public/AssetPairs``: every pair, its altname and wsname."""
    return "/0/public/AssetPairs", {}
