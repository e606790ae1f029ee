"""What Bybit's v5 public API serves, declared once (checked before the first request).

* Candles: ``GET /v5/market/kline``, up to 1000 bars a page, newest first, full history,
  intervals 1 3 5 15 30 60 120 240 360 720 D W (M has no dccd span).
* Trades: ``GET /v5/market/recent-trade`` only returns the latest trades (spot 60,
  derivatives 1000) and cannot page into the past: ``recent_only``.
* Book: ``GET /v5/market/orderbook``, spot up to 200 levels, derivatives up to 500.
* Funding: ``GET /v5/market/funding/history`` (linear and inverse), 200 a page, newest
  first, full history.
* Mark / index price candles: ``/v5/market/mark-price-kline`` / ``index-price-kline``
  (linear and inverse), like kline: 1000 a page, newest first (see ``prices.py``).
* Open interest: ``/v5/market/open-interest``, 200 a page, newest first, periods 5m
  15m 30m 1h 4h 1d (see ``open_interest.py``).
* Budget: 600 requests per 5 s per IP across the public endpoints.
* Streams (``ws.py``): ``publicTrade``, ``kline`` (``confirm`` flag), ``orderbook``
  (snapshot + deltas with a contiguous update id ``u``).

Docs: https://bybit-exchange.github.io/docs/v5/market/kline ,
https://bybit-exchange.github.io/docs/v5/rate-limit
"""

from __future__ import annotations

from dccd_core.domain import (
    ArchiveFeature,
    ArchiveGranularity,
    Capability,
    DataType,
    PageDirection,
)

from .. import features

__all__ = [
    "BOOK_DEPTHS",
    "CAPABILITY",
    "FUNDING_LIMIT",
    "INTERVALS",
    "KLINE_LIMIT",
    "OPEN_INTEREST_INTERVALS",
    "OPEN_INTEREST_LIMIT",
    "TRADES_LIMIT_DERIVATIVES",
    "TRADES_LIMIT_SPOT",
]

#: dccd span -> Bybit ``interval`` value.
INTERVALS = features.span_table(
    {"1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120"}
    | {"4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W"}
)

KLINE_LIMIT = 1000
TRADES_LIMIT_SPOT = 60
TRADES_LIMIT_DERIVATIVES = 1000
FUNDING_LIMIT = 200
OPEN_INTEREST_LIMIT = 200
#: dccd span -> Bybit open-interest ``intervalTime``
OPEN_INTEREST_INTERVALS = features.span_table(
    {"5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "4h": "4h", "1d": "1d"}
)
BOOK_DEPTHS = (1, 5, 10, 20, 25, 50, 100, 200)

_SPANS = tuple(INTERVALS)
_BACKWARD = PageDirection.BACKWARD

CAPABILITY = Capability(
    exchange="bybit",
    features=(
        features.rest_candles(page_limit=KLINE_LIMIT, direction=_BACKWARD, spans=_SPANS),
        features.rest_trades(
            page_limit=TRADES_LIMIT_DERIVATIVES,
            direction=_BACKWARD,
            recent_only=True,
            alternative="collect trades live with a stream (stream: [trades])",
        ),
        features.rest_book(book_depths=BOOK_DEPTHS),
        features.rest_funding(page_limit=FUNDING_LIMIT, direction=_BACKWARD),
        features.rest_mark(page_limit=KLINE_LIMIT, direction=_BACKWARD, spans=_SPANS),
        features.rest_index(page_limit=KLINE_LIMIT, direction=_BACKWARD, spans=_SPANS),
        features.rest_open_interest(
            page_limit=OPEN_INTEREST_LIMIT,
            direction=_BACKWARD,
            spans=tuple(OPEN_INTEREST_INTERVALS),
        ),
        features.ws_trades(channel="publicTrade"),
        features.ws_candles(spans=_SPANS, channel="kline"),
        # orderbook.{1,50,200}: any depth up to 200 is served from the next deeper topic
        features.ws_book(book_depths=BOOK_DEPTHS, channel="orderbook"),
        # linear and inverse only, every liquidation, pushed every 500 ms; WebSocket only
        features.ws_liquidations(channel="allLiquidation"),
    ),
    weight_per_minute=7_200,
    docs_url="https://bybit-exchange.github.io/docs/v5/intro",
    markets=("spot", "linear", "inverse"),
    archives=(
        # public.bybit.com/trading/ daily files (``archives.py``): the only trade history
        # Bybit serves. Spot files are left out: their ids are not the REST execIds.
        ArchiveFeature(
            DataType.TRADES,
            markets=("linear", "inverse"),
            granularities=(ArchiveGranularity.DAILY,),
            lag_days=1,
            checksum=False,  # none is published: gzip integrity and rows are checked
            docs_url="",  # a file listing only (public.bybit.com/trading/): undocumented
        ),
    ),
)
