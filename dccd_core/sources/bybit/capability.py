"""What Bybit's v5 public API serves, declared once (checked before the first request).

* Candles: ``GET /v5/market/kline``, up to 1000 bars a page, newest first, full history,
  intervals 1 3 5 15 30 60 120 240 360 720 D W (M has no dccd span).
* Trades: ``GET /v5/market/recent-trade`` only returns the latest trades (spot 60,
  derivatives 1000) and cannot page into the past: ``recent_only``.
* Book: ``GET /v5/market/orderbook``, spot up to 200 levels, derivatives up to 500.
* Budget: 600 requests per 5 s per IP across the public endpoints.
* Streams (``ws.py``): ``publicTrade``, ``kline`` (``confirm`` flag), ``orderbook``
  (snapshot + deltas with a contiguous update id ``u``).

Docs: https://bybit-exchange.github.io/docs/v5/market/kline ,
https://bybit-exchange.github.io/docs/v5/rate-limit
"""

from __future__ import annotations

from dccd_core.domain import Capability, DataType, Feature, PageDirection, Span, Transport

__all__ = [
    "CAPABILITY",
    "INTERVALS",
    "KLINE_LIMIT",
    "TRADES_LIMIT_DERIVATIVES",
    "TRADES_LIMIT_SPOT",
]

#: dccd span -> Bybit ``interval`` value.
INTERVALS: dict[Span, str] = {
    Span.parse("1m"): "1",
    Span.parse("3m"): "3",
    Span.parse("5m"): "5",
    Span.parse("15m"): "15",
    Span.parse("30m"): "30",
    Span.parse("1h"): "60",
    Span.parse("2h"): "120",
    Span.parse("4h"): "240",
    Span.parse("6h"): "360",
    Span.parse("12h"): "720",
    Span.parse("1d"): "D",
    Span.parse("1w"): "W",
}

KLINE_LIMIT = 1000
TRADES_LIMIT_SPOT = 60
TRADES_LIMIT_DERIVATIVES = 1000

_SPANS = tuple(INTERVALS)

CAPABILITY = Capability(
    exchange="bybit",
    features=(
        Feature(
            DataType.OHLC,
            Transport.REST,
            page_limit=KLINE_LIMIT,
            direction=PageDirection.BACKWARD,
            spans=_SPANS,
        ),
        Feature(
            DataType.TRADES,
            Transport.REST,
            page_limit=TRADES_LIMIT_DERIVATIVES,
            direction=PageDirection.BACKWARD,
            recent_only=True,
            alternative="collect trades live with a stream (stream: [trades])",
        ),
        Feature(
            DataType.BOOK,
            Transport.REST,
            book_depths=(1, 5, 10, 20, 25, 50, 100, 200),
        ),
        Feature(DataType.TRADES, Transport.WS, channel="publicTrade"),
        Feature(DataType.OHLC, Transport.WS, spans=_SPANS, channel="kline"),
        # orderbook.{1,50,200}: any depth up to 200 is served from the next deeper topic
        Feature(
            DataType.BOOK,
            Transport.WS,
            book_depths=(1, 5, 10, 20, 25, 50, 100, 200),
            channel="orderbook",
        ),
    ),
    weight_per_minute=7_200,
    docs_url="https://bybit-exchange.github.io/docs/v5/intro",
    markets=("spot", "linear", "inverse"),
)
