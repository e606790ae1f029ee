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

from dccd_core.domain import Capability, DataType, Feature, PageDirection, Span, Transport

__all__ = [
    "CANDLE_PAGE_LIMIT",
    "CAPABILITY",
    "DERIVE_HINT",
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

#: What to do instead when a span is not served (candles derived from trades).
DERIVE_HINT = (
    "derive candles from trades (catalog: list the span under `derive:` "
    "of a dataset with trades in data_types, e.g. derive: [4h])"
)

CAPABILITY = Capability(
    exchange="coinbase",
    features=(
        Feature(
            DataType.OHLC,
            Transport.REST,
            page_limit=CANDLE_PAGE_LIMIT,
            # Windows are addressed by start/end; each page comes newest first.
            direction=PageDirection.BACKWARD,
            spans=SPANS,
            alternative=DERIVE_HINT,
        ),
        Feature(
            DataType.TRADES,
            Transport.REST,
            page_limit=TRADE_PAGE_LIMIT,
            direction=PageDirection.BACKWARD,
        ),
        Feature(DataType.BOOK, Transport.REST),
        Feature(DataType.TRADES, Transport.WS, channel="matches"),
        Feature(
            DataType.BOOK,
            Transport.WS,
            channel="level2_batch",
            alternative="poll REST snapshots (data type book over rest)",
        ),
    ),
    weight_per_minute=600,
    docs_url=DOCS_URL,
)
