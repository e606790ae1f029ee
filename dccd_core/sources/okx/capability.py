"""What OKX's v5 public API serves, declared once (checked before the first request).

* Candles: ``GET /api/v5/market/history-candles``, 100 bars a page, newest first, full
  history; bars 1m 3m 5m 15m 30m 1H 2H 4H and the UTC-aligned 6Hutc 12Hutc 1Dutc 1Wutc
  (plain 6H/12H/1D/1W are aligned to Hong Kong time, never used).
* Trades: ``GET /api/v5/market/history-trades``, 100 a page, newest first, paged back by
  ``tradeId`` (``type=1``); OKX keeps the last 3 months only.
* Book: ``GET /api/v5/market/books``, up to 400 levels a side.
* Budget: 20 requests per 2 s per IP on the history endpoints (600 a minute).
* Streams (``ws.py``): ``trades-all`` and ``candle{bar}`` on ``/ws/v5/business``,
  ``books`` (seqId chain + CRC32 checksum) on ``/ws/v5/public``.

Docs: https://www.okx.com/docs-v5/en/#public-data-rest-api-get-candlesticks-history
"""

from __future__ import annotations

from dccd_core.domain import Capability, DataType, Feature, PageDirection, Span, Transport

__all__ = ["BARS", "CANDLES_LIMIT", "CAPABILITY", "TRADES_LIMIT"]

#: dccd span -> OKX ``bar`` value (UTC-aligned variants for 6h and longer).
BARS: dict[Span, str] = {
    Span.parse("1m"): "1m",
    Span.parse("3m"): "3m",
    Span.parse("5m"): "5m",
    Span.parse("15m"): "15m",
    Span.parse("30m"): "30m",
    Span.parse("1h"): "1H",
    Span.parse("2h"): "2H",
    Span.parse("4h"): "4H",
    Span.parse("6h"): "6Hutc",
    Span.parse("12h"): "12Hutc",
    Span.parse("1d"): "1Dutc",
    Span.parse("1w"): "1Wutc",
}

CANDLES_LIMIT = 100
TRADES_LIMIT = 100

_SPANS = tuple(BARS)

CAPABILITY = Capability(
    exchange="okx",
    features=(
        Feature(
            DataType.OHLC,
            Transport.REST,
            page_limit=CANDLES_LIMIT,
            direction=PageDirection.BACKWARD,
            spans=_SPANS,
        ),
        Feature(
            DataType.TRADES,
            Transport.REST,
            page_limit=TRADES_LIMIT,
            direction=PageDirection.BACKWARD,
        ),
        Feature(
            DataType.BOOK,
            Transport.REST,
            book_depths=(1, 5, 10, 20, 25, 50, 100, 200, 400),
        ),
        # trades-all, not the aggregating trades channel (see ws.py)
        Feature(DataType.TRADES, Transport.WS, channel="trades-all"),
        Feature(DataType.OHLC, Transport.WS, spans=_SPANS, channel="candle"),
        # books: 400 levels with seqId/prevSeqId and a checksum; any depth <= 400 is cut
        Feature(
            DataType.BOOK,
            Transport.WS,
            book_depths=(1, 5, 10, 20, 25, 50, 100, 200, 400),
            channel="books",
        ),
    ),
    weight_per_minute=600,
    docs_url="https://www.okx.com/docs-v5/en/",
    markets=("spot", "swap"),
)
