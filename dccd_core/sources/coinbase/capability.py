"""What Coinbase Exchange's public market-data API can serve, declared once.

Docs: https://docs.cdp.coinbase.com/exchange/introduction/welcome

* Candles ``GET /products/{id}/candles``: at most 300 bars a request, six granularities
  only (60, 300, 900, 3600, 21600, 86400 s), rows newest first.
* Trades ``GET /products/{id}/trades``: 1000 a page, newest first, paged backwards by
  trade id (``after`` = older than this id; the ``CB-AFTER`` header gives the next one).
  There is no time parameter, so an old window is found by bisecting trade ids.
* Book ``GET /products/{id}/book?level=2``: the aggregated book (any depth we slice).
* WebSocket ``wss://ws-feed.exchange.coinbase.com``: ``matches`` (trades) and
  ``level2_batch`` (snapshot + l2update). There is no candle channel: ``ticker`` is a
  last-trade feed, not bars, so candles over WS are not declared.
* Public REST limit: about 10 requests/s per IP.
"""

from __future__ import annotations

from dccd_core.domain import Capability, PageDirection, Span

from .. import features

__all__ = [
    "CANDLE_PAGE_LIMIT",
    "CAPABILITY",
    "DOCS_URL",
    "GRANULARITIES_S",
    "REST_URL",
    "SPANS",
    "TRADE_PAGE_LIMIT",
    "WS_URL",
]

DOCS_URL = "https://docs.cdp.coinbase.com/exchange/introduction/welcome"
REST_URL = "https://api.exchange.coinbase.com"
WS_URL = "wss://ws-feed.exchange.coinbase.com"

CANDLE_PAGE_LIMIT = 300
TRADE_PAGE_LIMIT = 1000
GRANULARITIES_S: tuple[int, ...] = (60, 300, 900, 3_600, 21_600, 86_400)
SPANS: tuple[Span, ...] = tuple(Span.parse(s) for s in GRANULARITIES_S)

_BACKWARD = PageDirection.BACKWARD
_POLL_HINT = "poll REST snapshots (data type book over rest)"

CAPABILITY = Capability(
    exchange="coinbase",
    features=(
        # Windows are addressed by start/end; each page comes newest first.
        features.rest_candles(
            page_limit=CANDLE_PAGE_LIMIT,
            direction=_BACKWARD,
            spans=SPANS,
            alternative=features.DERIVE_HINT,
        ),
        features.rest_trades(page_limit=TRADE_PAGE_LIMIT, direction=_BACKWARD),
        features.rest_book(),
        features.ws_trades(channel="matches"),
        features.ws_book(channel="level2_batch", alternative=_POLL_HINT),
    ),
    weight_per_minute=600,
    docs_url=DOCS_URL,
)
