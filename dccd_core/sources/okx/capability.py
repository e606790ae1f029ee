"""What OKX's v5 public API serves, declared once (checked before the first request).

* Candles: ``GET /api/v5/market/history-candles``, 100 bars a page, newest first, full
  history; bars 1m 3m 5m 15m 30m 1H 2H 4H and the UTC-aligned 6Hutc 12Hutc 1Dutc 1Wutc
  (plain 6H/12H/1D/1W are aligned to Hong Kong time, never used).
* Trades: ``GET /api/v5/market/history-trades``, 100 a page, newest first, paged back by
  ``tradeId`` (``type=1``); OKX keeps the last 3 months only.
* Book: ``GET /api/v5/market/books``, up to 400 levels a side.
* Funding: ``GET /api/v5/public/funding-rate-history`` (swaps), 100 a page, newest
  first, the last 3 months only (``FUNDING_HISTORY_DAYS``).
* Mark / index price candles: ``history-mark-price-candles`` / ``history-index-candles``
  (swaps), 100 a page, newest first, the candle bars (see ``prices.py``).
* Open interest: ``GET /api/v5/rubik/stat/contracts/open-interest-history`` (swaps), 100
  a page, newest first, periods 5m..1d, the latest 1,440 samples of a period only
  (``OPEN_INTEREST_HISTORY``: 5 days of 5m, 60 days of 1h; see ``open_interest.py``).
* Budget: 20 requests per 2 s per IP on the history endpoints (600 a minute).
* Streams (``ws.py``): ``trades-all`` and ``candle{bar}`` on ``/ws/v5/business``,
  ``books`` (seqId chain + CRC32 checksum) on ``/ws/v5/public``.
* Liquidations (swaps, WebSocket only): ``liquidation-orders`` on ``/ws/v5/public``,
  subscribed per instrument type (every swap's, filtered to the subscribed ones);
  sizes in contracts converted to base with ``ctVal``, the price is the bankruptcy price.

Docs: https://www.okx.com/docs-v5/en/#public-data-rest-api-get-candlesticks-history
"""

from __future__ import annotations

from dccd_core.domain import Capability, PageDirection

from .. import features

__all__ = [
    "BARS",
    "BOOK_DEPTHS",
    "CANDLES_LIMIT",
    "CAPABILITY",
    "FUNDING_HISTORY_DAYS",
    "FUNDING_LIMIT",
    "OPEN_INTEREST_HISTORY",
    "OPEN_INTEREST_LIMIT",
    "OPEN_INTEREST_PERIODS",
    "TRADES_LIMIT",
]

#: dccd span -> OKX ``bar`` value (UTC-aligned variants for 6h and longer).
BARS = features.span_table(
    {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "1H", "2h": "2H"}
    | {"4h": "4H", "6h": "6Hutc", "12h": "12Hutc", "1d": "1Dutc", "1w": "1Wutc"}
)

CANDLES_LIMIT = 100
TRADES_LIMIT = 100
FUNDING_LIMIT = 100
#: "This endpoint can retrieve data from the last 3 months" (90 days, to be safe)
FUNDING_HISTORY_DAYS = 90
OPEN_INTEREST_LIMIT = 100
#: "This endpoint can retrieve the latest 1,440 data entries" (per period)
OPEN_INTEREST_HISTORY = 1_440
#: dccd span -> OKX ``period`` of the open-interest history (UTC-aligned from 6h on)
OPEN_INTEREST_PERIODS = {span: BARS[span] for span in BARS if span.label not in ("1m", "3m", "1w")}
BOOK_DEPTHS = (1, 5, 10, 20, 25, 50, 100, 200, 400)

_SPANS = tuple(BARS)
_BACKWARD = PageDirection.BACKWARD

CAPABILITY = Capability(
    exchange="okx",
    features=(
        features.rest_candles(page_limit=CANDLES_LIMIT, direction=_BACKWARD, spans=_SPANS),
        features.rest_trades(page_limit=TRADES_LIMIT, direction=_BACKWARD),
        features.rest_book(book_depths=BOOK_DEPTHS),
        features.rest_funding(
            page_limit=FUNDING_LIMIT,
            direction=_BACKWARD,
            history_days=FUNDING_HISTORY_DAYS,
            alternative="keep the dataset's update schedule running: it extends the "
            "history from the day it was added",
        ),
        features.rest_open_interest(
            page_limit=OPEN_INTEREST_LIMIT,
            direction=_BACKWARD,
            spans=tuple(OPEN_INTEREST_PERIODS),
            history_bars=OPEN_INTEREST_HISTORY,
            alternative="keep the dataset's update schedule running: it extends the "
            "history from the day it was added",
        ),
        # trades-all, not the aggregating trades channel (see ws.py)
        features.rest_mark(page_limit=CANDLES_LIMIT, direction=_BACKWARD, spans=_SPANS),
        features.rest_index(page_limit=CANDLES_LIMIT, direction=_BACKWARD, spans=_SPANS),
        features.ws_trades(channel="trades-all"),
        features.ws_candles(spans=_SPANS, channel="candle"),
        # books: 400 levels with seqId/prevSeqId and a checksum; any depth <= 400 is cut
        features.ws_book(book_depths=BOOK_DEPTHS, channel="books"),
        # swaps only, every swap's on one subscription; WebSocket only (no REST history)
        features.ws_liquidations(channel="liquidation-orders"),
    ),
    weight_per_minute=600,
    docs_url="https://www.okx.com/docs-v5/en/",
    markets=("spot", "swap"),
)
