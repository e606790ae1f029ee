"""What BitMEX's public API can serve, declared once.

Docs: https://www.bitmex.com/api/explorer/ (``Trade_getBucketed``, ``Trade_get``,
``OrderBook_getL2``, ``Instrument_getActive``) and https://www.bitmex.com/app/wsAPI .

Bucketed candles exist only for 1m, 5m, 1h and 1d; every table query returns at most
1,000 rows (``count``). The REST budget is 120 requests per minute (less when not
authenticated); every response reports what is left in ``x-ratelimit-remaining``,
which the source feeds to the weight limiter.
"""

from __future__ import annotations

from dccd_core.domain import Capability, DataType, Feature, PageDirection, Span, Transport

__all__ = ["BIN_SIZES", "CAPABILITY", "DERIVE_HINT", "DOCS_URL", "PAGE_LIMIT", "REST_URL", "WS_URL"]

DOCS_URL = "https://www.bitmex.com/api/explorer/"
REST_URL = "https://www.bitmex.com"
WS_URL = "wss://ws.bitmex.com"  # the source appends /realtime

#: BitMEX ``binSize`` per dccd span.
BIN_SIZES: dict[Span, str] = {
    Span.parse("1m"): "1m",
    Span.parse("5m"): "5m",
    Span.parse("1h"): "1h",
    Span.parse("1d"): "1d",
}

PAGE_LIMIT = 1_000

#: What to do instead when a span is not served (candles derived from trades).
DERIVE_HINT = (
    "derive candles from trades (catalog: list the span under `derive:` "
    "of a dataset with trades in data_types, e.g. derive: [4h])"
)

CAPABILITY = Capability(
    exchange="bitmex",
    features=(
        Feature(
            DataType.OHLC,
            Transport.REST,
            page_limit=PAGE_LIMIT,
            direction=PageDirection.FORWARD,
            spans=tuple(BIN_SIZES),
            alternative=DERIVE_HINT,
        ),
        Feature(
            DataType.TRADES, Transport.REST, page_limit=PAGE_LIMIT, direction=PageDirection.FORWARD
        ),
        Feature(DataType.BOOK, Transport.REST, book_depths=(), page_limit=None),
        Feature(DataType.TRADES, Transport.WS, channel="trade"),
        Feature(
            DataType.OHLC,
            Transport.WS,
            spans=tuple(BIN_SIZES),
            channel="tradeBin{bin}",
            alternative=DERIVE_HINT,
        ),
        Feature(DataType.BOOK, Transport.WS, book_depths=(25,), channel="orderBookL2_25"),
    ),
    weight_per_minute=120,
    docs_url=DOCS_URL,
    markets=("spot", "linear", "inverse"),
)
