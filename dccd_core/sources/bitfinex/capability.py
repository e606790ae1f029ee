"""What Bitfinex's public v2 API can serve, declared once.

Docs: https://docs.bitfinex.com/reference/rest-public-candles ,
https://docs.bitfinex.com/reference/rest-public-trades ,
https://docs.bitfinex.com/reference/rest-public-book ,
https://docs.bitfinex.com/docs/ws-public .

Rate limits are per endpoint and vary between 10 and 90 requests per minute (an IP
over the limit is blocked for 60 s). We budget 90 weight units per minute and charge
the history endpoints more: trades 6 (15 req/min), candles 3 (30 req/min).
"""

from __future__ import annotations

from dccd_core.domain import Capability, PageDirection, Span

from .. import features

__all__ = [
    "CANDLES_PAGE_LIMIT",
    "CANDLE_TIMEFRAMES",
    "CAPABILITY",
    "DOCS_URL",
    "REST_URL",
    "TRADES_PAGE_LIMIT",
    "WS_URL",
]

DOCS_URL = "https://docs.bitfinex.com/docs/rest-public"
REST_URL = "https://api-pub.bitfinex.com"
WS_URL = "wss://api-pub.bitfinex.com"  # the source appends /ws/2

#: Bitfinex timeframe label per dccd span (3h, 14D and 1M have no dccd span).
CANDLE_TIMEFRAMES: dict[Span, str] = {
    Span.parse("1m"): "1m",
    Span.parse("5m"): "5m",
    Span.parse("15m"): "15m",
    Span.parse("30m"): "30m",
    Span.parse("1h"): "1h",
    Span.parse("6h"): "6h",
    Span.parse("12h"): "12h",
    Span.parse("1d"): "1D",
    Span.parse("1w"): "1W",
}

#: Max rows of /v2/trades/{symbol}/hist and /v2/candles/.../hist.
TRADES_PAGE_LIMIT = 10_000
CANDLES_PAGE_LIMIT = 10_000

_SPANS = tuple(CANDLE_TIMEFRAMES)
_FORWARD = PageDirection.FORWARD

CAPABILITY = Capability(
    exchange="bitfinex",
    features=(
        features.rest_candles(
            page_limit=CANDLES_PAGE_LIMIT,
            direction=_FORWARD,
            spans=_SPANS,
            weight=3,
            alternative=features.DERIVE_HINT,
        ),
        features.rest_trades(page_limit=TRADES_PAGE_LIMIT, direction=_FORWARD, weight=6),
        features.rest_book(
            book_depths=(1, 25, 100),
            weight=1,
            alternative="stream the book over WebSocket (depth 1, 25, 100 or 250)",
        ),
        features.ws_trades(channel="trades"),
        features.ws_candles(spans=_SPANS, channel="candles", alternative=features.DERIVE_HINT),
        features.ws_book(book_depths=(1, 25, 100, 250), channel="book"),
    ),
    weight_per_minute=90,
    docs_url=DOCS_URL,
    markets=("spot", "linear"),
)
