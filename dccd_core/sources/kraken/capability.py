"""What Kraken's public spot API can serve, declared once.

Docs: https://docs.kraken.com/api/docs/rest-api/get-ohlc-data

* OHLC ``GET /0/public/OHLC``: only the most recent 720 bars of a span are reachable,
  whatever ``since`` says, and the last row is the still-open bar. Intervals 1, 5, 15,
  30, 60, 240, 1440, 10080 and 21600 minutes; the weekly (epoch-aligned, Thursday) and
  15-day bars do not match dccd's spans, so they are not declared.
* Trades ``GET /0/public/Trades``: 1000 a page, oldest first, addressed by ``since``
  (ns) and paged by the ``last`` cursor; the full history is reachable.
* Book ``GET /0/public/Depth?count=``: up to 500 levels a side.
* WebSocket v2 ``wss://ws.kraken.com/v2``: ``trade``, ``ohlc`` and ``book`` (depths 10,
  25, 100, 500, 1000; CRC32 checksum of the top 10 levels on every message).
* Public REST limit: about one request a second per IP.
"""

from __future__ import annotations

from dccd_core.domain import Capability, PageDirection, Span

from .. import features

__all__ = [
    "BOOK_MAX_DEPTH",
    "CAPABILITY",
    "DOCS_URL",
    "HISTORY_BARS",
    "REST_URL",
    "SPANS",
    "TRADE_PAGE_LIMIT",
    "WS_BOOK_DEPTHS",
    "WS_URL",
]

DOCS_URL = "https://docs.kraken.com/api/"
REST_URL = "https://api.kraken.com"
WS_URL = "wss://ws.kraken.com"  # the source appends /v2

HISTORY_BARS = 720
TRADE_PAGE_LIMIT = 1000
BOOK_MAX_DEPTH = 500
WS_BOOK_DEPTHS: tuple[int, ...] = (10, 25, 100, 500, 1000)
SPANS: tuple[Span, ...] = tuple(Span.parse(s) for s in ("1m", "5m", "15m", "30m", "1h", "4h", "1d"))

CAPABILITY = Capability(
    exchange="kraken",
    features=(
        features.rest_candles(
            page_limit=HISTORY_BARS,
            spans=SPANS,
            history_bars=HISTORY_BARS,
            alternative=features.DERIVE_HINT,
        ),
        features.rest_trades(page_limit=TRADE_PAGE_LIMIT, direction=PageDirection.FORWARD),
        features.rest_book(),
        features.ws_trades(channel="trade"),
        features.ws_candles(spans=SPANS, channel="ohlc", alternative=features.DERIVE_HINT),
        features.ws_book(book_depths=WS_BOOK_DEPTHS, channel="book"),
    ),
    weight_per_minute=60,
    docs_url=DOCS_URL,
)
