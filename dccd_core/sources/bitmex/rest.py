"""BitMEX REST request builders: (path, params) for each public endpoint.

Times are ISO-8601 UTC with milliseconds. Table queries page with ``count`` (at most
1,000) and the row offset ``start``; ``reverse=false`` returns oldest first.
"""

from __future__ import annotations

from dccd_core.domain import NS_PER_MS, DataType, NoCapability, Span, iso_datetime
from dccd_core.transport.errors import TRANSIENT, ErrorTable

from ..columns import ceil_ms
from .capability import BIN_SIZES, CAPABILITY, PAGE_LIMIT

__all__ = [
    "ERRORS",
    "Request",
    "bin_size",
    "build_book_request",
    "build_candles_request",
    "build_instruments_request",
    "build_trades_request",
    "iso_ms",
]

Request = tuple[str, dict[str, str | int]]

#: BitMEX's documented errors (bitmex.com/app/restAPI, "Overload"): no codes, an
#: ``{"error": {"message", "name"}}`` body. Load shedding answers HTTP 503 with the
#: message below: the request never reached the engine, retry after >= 500 ms.
ERRORS = ErrorTable.of(
    {
        "The system is currently overloaded. Please try again later.": TRANSIENT,
    }
)


def iso_ms(ms: int) -> str:
    """Epoch ms -> ``2024-01-01T00:00:01.500Z`` (always three decimals)."""
    text = iso_datetime(ms * NS_PER_MS).rstrip("Z")
    head, _, frac = text.partition(".")
    return f"{head}.{frac.ljust(3, '0')[:3]}Z"


def bin_size(span: Span) -> str:
    """The BitMEX ``binSize`` of ``span``, or ``NoCapability`` naming the spans."""
    if span not in BIN_SIZES:
        CAPABILITY.require(DataType.OHLC, span=span)
        raise NoCapability(f"bitmex has no {span} candles")  # pragma: no cover
    return BIN_SIZES[span]


def build_candles_request(native: str, span: Span, start_ts: int, end_ts: int) -> Request:
    """Bars OPENING in ``[start_ts, end_ts)``: BitMEX stamps bars at their close, so
    ask for stamps in ``[start_ts + span, end_ts + span)``."""
    first_close_ms = ceil_ms(start_ts + span.ns)
    last_close_ms = ceil_ms(end_ts + span.ns) - 1
    bars = max(1, -(-(end_ts - start_ts) // span.ns))
    params: dict[str, str | int] = {
        "binSize": bin_size(span),
        "symbol": native,
        "startTime": iso_ms(first_close_ms),
        "endTime": iso_ms(last_close_ms),
        "count": min(PAGE_LIMIT, bars),
        "reverse": "false",
        "partial": "false",
    }
    return "/api/v1/trade/bucketed", params


def build_trades_request(native: str, start_ms: int, offset: int, end_ms: int) -> Request:
    """Trades from ``start_ms`` (inclusive), skipping the first ``offset`` rows there."""
    params: dict[str, str | int] = {
        "symbol": native,
        "startTime": iso_ms(start_ms),
        "endTime": iso_ms(end_ms),
        "count": PAGE_LIMIT,
        "start": offset,
        "reverse": "false",
    }
    return "/api/v1/trade", params


def build_book_request(native: str, depth: int) -> Request:
    """``/api/v1/orderBook/L2?symbol=XBTUSD&depth=25`` (depth per side; 0 = full book)."""
    return "/api/v1/orderBook/L2", {"symbol": native, "depth": depth}


def build_instruments_request() -> Request:
    """``/api/v1/instrument/active``: every listed instrument and its contract terms."""
    return "/api/v1/instrument/active", {}
