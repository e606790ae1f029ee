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

from dccd_core.domain import Capability, DataType, Feature, PageDirection, Span, Transport

__all__ = [
    "CANDLES_PAGE_LIMIT",
    "CANDLE_TIMEFRAMES",
    "CAPABILITY",
    "DERIVE_HINT",
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

#: What to do instead when a span is not served (candles derived from trades).
DERIVE_HINT = (
    "derive candles from trades (catalog: list the span under `derive:` "
    "of a dataset with trades in data_types, e.g. derive: [4h])"
)

CAPABILITY = Capability(
    exchange="bitfinex",
    features=(
        Feature(
            DataType.OHLC,
            Transport.REST,
            page_limit=CANDLES_PAGE_LIMIT,
            direction=PageDirection.FORWARD,
            spans=tuple(CANDLE_TIMEFRAMES),
            weight=3,
            alternative=DERIVE_HINT,
        ),
        Feature(
            DataType.TRADES,
            Transport.REST,
            page_limit=TRADES_PAGE_LIMIT,
            direction=PageDirection.FORWARD,
            weight=6,
        ),
        Feature(
            DataType.BOOK,
            Transport.REST,
            book_depths=(1, 25, 100),
            weight=1,
            alternative="stream the book over WebSocket (depth 1, 25, 100 or 250)",
        ),
        Feature(DataType.TRADES, Transport.WS, channel="trades"),
        Feature(
            DataType.OHLC,
            Transport.WS,
            spans=tuple(CANDLE_TIMEFRAMES),
            channel="candles",
            alternative=DERIVE_HINT,
        ),
        Feature(DataType.BOOK, Transport.WS, book_depths=(1, 25, 100, 250), channel="book"),
    ),
    weight_per_minute=90,
    docs_url=DOCS_URL,
    markets=("spot", "linear"),
)
