"""Request builders for Coinbase Exchange's public REST endpoints: (path, params) pairs.

Docs: https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproductcandles
"""

from __future__ import annotations

from dccd_core.domain import NoCapability, Span, iso_datetime
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .capability import CANDLE_PAGE_LIMIT, GRANULARITIES_S, SPANS, TRADE_PAGE_LIMIT

__all__ = [
    "ERRORS",
    "Request",
    "build_book_request",
    "build_candles_request",
    "build_products_request",
    "build_trades_request",
]

Request = tuple[str, dict[str, str | int]]

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
        raise NoCapability(
            f"coinbase has no {span} candles: its spans are {labels}; "
            "derive candles from trades (catalog: list the span under `derive:` "
            "of a dataset with trades in data_types, e.g. derive: [4h])"
        )
    bars = -(-(end_ts - start_ts) // span.ns)
    if bars > CANDLE_PAGE_LIMIT:
        raise NoCapability(
            f"coinbase serves at most {CANDLE_PAGE_LIMIT} candles a request, asked {bars}; "
            "split the window (the candle paginator does)"
        )
    params: dict[str, str | int] = {
        "granularity": span.seconds,
        "start": iso_datetime(start_ts),
        "end": iso_datetime(end_ts),
    }
    return f"/products/{product_id}/candles", params


def build_trades_request(
    product_id: str, after_id: int | None = None, limit: int = TRADE_PAGE_LIMIT
) -> Request:
    """``/products/{id}/trades?limit=[&after=]``: newest first; ``after`` = older than that id."""
    params: dict[str, str | int] = {"limit": min(limit, TRADE_PAGE_LIMIT)}
    if after_id is not None:
        params["after"] = after_id
    return f"/products/{product_id}/trades", params


def build_book_request(product_id: str) -> Request:
    """``/products/{id}/book?level=2``: the aggregated book, best first."""
    return f"/products/{product_id}/book", {"level": 2}


def build_products_request() -> Request:
    """``/products``: every product and its status."""
    return "/products", {}
