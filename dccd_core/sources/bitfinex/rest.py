"""Bitfinex v2 REST request builders: (path, params) for each public endpoint.

Times are epoch milliseconds; ``start`` and ``end`` are inclusive. ``sort=1`` asks for
oldest-first rows (the default, ``-1``, is newest-first).
"""

from __future__ import annotations

from dccd_core.domain import NS_PER_MS, DataType, NoCapability, Span
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .capability import CANDLE_TIMEFRAMES, CAPABILITY

__all__ = [
    "ERRORS",
    "Request",
    "build_book_request",
    "build_candles_request",
    "build_pair_list_request",
    "build_trades_request",
    "ceil_ms",
]

Request = tuple[str, dict[str, str | int]]

#: Bitfinex's documented error codes (docs.bitfinex.com): ``["error", code, message]``
#: (HTTP 500 for a bad parameter, the reason a 5xx cannot simply mean "retry") and
#: ``{"error": "ERR_RATE_LIMIT"}`` when an IP is blocked, for up to 60 s.
ERRORS = ErrorTable.of(
    {
        10020: PERMANENT,  # ERR_PARAMS: request parameters error ("limit: invalid", ...)
        11000: TRANSIENT,  # ERR_READY: not ready, try again later
        11010: RATE_LIMIT,  # ERR_RATE_LIMIT as a code
        20060: TRANSIENT,  # maintenance: retry in a few minutes
        "ERR_RATE_LIMIT": RATE_LIMIT,
    },
    rate_limit_pause_s=60.0,
)


def ceil_ms(ts: int) -> int:
    """ns -> ms, rounding up (a window end in ns becomes the first ms not wanted)."""
    return -(-ts // NS_PER_MS)


def timeframe(span: Span) -> str:
    """The Bitfinex timeframe label of ``span`` (``1d`` -> ``1D``), or ``NoCapability``."""
    try:
        return CANDLE_TIMEFRAMES[span]
    except KeyError:
        CAPABILITY.require(DataType.OHLC, span=span)
        raise NoCapability(f"bitfinex has no {span} candles") from None


def build_candles_request(
    native: str, span: Span, start_ts: int, end_ts: int, limit: int
) -> Request:
    """Bars opening in ``[start_ts, end_ts)``: ``/v2/candles/trade:1m:tBTCUSD/hist``."""
    params: dict[str, str | int] = {
        "sort": 1,
        "start": ceil_ms(start_ts),
        "end": ceil_ms(end_ts) - 1,
        "limit": limit,
    }
    return f"/v2/candles/trade:{timeframe(span)}:{native}/hist", params


def build_trades_request(
    native: str, start_ms: int, end_ms: int, limit: int, *, newest_first: bool = False
) -> Request:
    """Trades with ``start_ms <= MTS <= end_ms``: ``/v2/trades/tBTCUSD/hist``."""
    params: dict[str, str | int] = {
        "sort": -1 if newest_first else 1,
        "start": start_ms,
        "end": end_ms,
        "limit": limit,
    }
    return f"/v2/trades/{native}/hist", params


def build_book_request(native: str, depth: int) -> Request:
    """``/v2/book/tBTCUSD/P0?len=25``: raw-precision aggregated levels, ``len`` per side."""
    return f"/v2/book/{native}/P0", {"len": depth}


def build_pair_list_request(kind: str = "exchange") -> Request:
    """``/v2/conf/pub:list:pair:exchange`` (spot) or ``...:futures`` (perpetuals)."""
    return f"/v2/conf/pub:list:pair:{kind}", {}
