"""What BitMEX's public API can serve, declared once.

Docs: https://www.bitmex.com/api/explorer/ (``Trade_getBucketed``, ``Trade_get``,
``OrderBook_getL2``, ``Instrument_getActive``) and https://www.bitmex.com/app/wsAPI .

Bucketed candles exist only for 1m, 5m, 1h and 1d; every table query returns at most
1,000 rows (``count``). The REST budget is 120 requests per minute (less when not
authenticated); every response reports what is left in ``x-ratelimit-remaining``,
which the source feeds to the weight limiter. Funding (``/api/v1/funding``) pages
forward like the other tables, full history. Liquidations are streamed only (the
realtime ``liquidation`` table; no REST history), one row per liquidation order inserted.

Archives: daily dumps of every instrument's trades on public.bitmex.com
(``/data/trade/YYYYMMDD.csv.gz``, see ``archives.py``), without a published checksum.
"""

from __future__ import annotations

from dccd_core.domain import (
    ArchiveFeature,
    ArchiveGranularity,
    Capability,
    DataType,
    PageDirection,
    Span,
)

from .. import features

__all__ = ["BIN_SIZES", "CAPABILITY", "DOCS_URL", "PAGE_LIMIT", "REST_URL", "WS_URL"]

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

_SPANS = tuple(BIN_SIZES)
_FORWARD = PageDirection.FORWARD

CAPABILITY = Capability(
    exchange="bitmex",
    features=(
        features.rest_candles(
            page_limit=PAGE_LIMIT,
            direction=_FORWARD,
            spans=_SPANS,
            alternative=features.DERIVE_HINT,
        ),
        features.rest_trades(page_limit=PAGE_LIMIT, direction=_FORWARD),
        features.rest_book(book_depths=(), page_limit=None),
        features.rest_funding(page_limit=PAGE_LIMIT, direction=_FORWARD),
        features.ws_trades(channel="trade"),
        features.ws_candles(
            spans=_SPANS, channel="tradeBin{bin}", alternative=features.DERIVE_HINT
        ),
        features.ws_book(book_depths=(25,), channel="orderBookL2_25"),
        # perpetuals only; the engine's order at insert (liquidations.py); no REST history
        features.ws_liquidations(channel="liquidation"),
    ),
    weight_per_minute=120,
    docs_url=DOCS_URL,
    markets=("spot", "linear", "inverse"),
    archives=(
        ArchiveFeature(
            DataType.TRADES,
            markets=("spot", "linear", "inverse"),
            granularities=(ArchiveGranularity.DAILY,),
            lag_days=1,
            checksum=False,  # none is published: only gzip integrity and the rows are checked
            # only a file listing (public.bitmex.com/?prefix=data/trade/): undocumented
            docs_url="",
        ),
    ),
)
