"""What Binance's public REST/WS market-data API serves, declared once.

Spot: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints
USD-M futures: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data

* Candles ``/api/v3/klines`` (``/fapi/v1/klines``): forward by ``startTime``/``endTime``
  (ms, both inclusive), ``limit`` default 500, max 1000 (spot; futures allow 1500, we
  page by 1000 everywhere), full history, all 13 dccd spans.
* Trades ``/api/v3/aggTrades``: aggregate trades, addressable by time (a
  ``startTime``..``endTime`` window must be shorter than 1 h) and by id (``fromId``),
  limit 1000, ids consecutive per symbol.
* Book ``/api/v3/depth``: limits 5..5000 (futures 5..1000).
* Funding ``/fapi/v1/fundingRate`` (USD-M only): forward from ``startTime``, limit 1000,
  full history; its own limit of 500 requests / 5 min (see ``funding.py``).
* Mark / index price candles ``/fapi/v1/markPriceKlines`` / ``indexPriceKlines`` (USD-M):
  like klines, all 13 spans (see ``prices.py``).
* Open interest ``/futures/data/openInterestHist`` (USD-M): 500 a page, forward, the
  last 30 days only (see ``open_interest.py``).
* Liquidations ``<symbol>@forceOrder`` (USD-M WebSocket only, no REST history): the
  latest liquidation of each symbol per 1000 ms.
* Archives: klines (all 13 spans) and aggTrades of spot and USD-M as monthly and daily
  zips with sha256 ``.CHECKSUM`` files on data.binance.vision (see ``archives.py``).
* Budget: spot 6000 weight/min, futures 2400 weight/min, reported in
  ``X-MBX-USED-WEIGHT-1M``. Weights are per endpoint (and per ``limit`` for depth and
  futures klines): see ``spot_weight`` / ``futures_weight``.
"""

from __future__ import annotations

from dccd_core.domain import ArchiveFeature, ArchiveGranularity, Capability, DataType, Span

from .. import features

__all__ = [
    "AGG_TRADES_LIMIT",
    "AGG_TRADES_MAX_WINDOW_MS",
    "BOOK_DEPTHS",
    "CAPABILITY",
    "FUNDING_LIMIT",
    "FUNDING_WEIGHT",
    "FUTURES_BOOK_DEPTHS",
    "FUTURES_WEIGHT_PER_MINUTE",
    "INTERVALS",
    "KLINES_DEFAULT_LIMIT",
    "KLINES_LIMIT",
    "OPEN_INTEREST_LIMIT",
    "OPEN_INTEREST_PERIODS",
    "OPEN_INTEREST_WEIGHT",
    "SPOT_WEIGHT_PER_MINUTE",
    "USAGE_HEADER",
    "futures_weight",
    "spot_weight",
]

#: dccd span -> Binance ``interval``: the labels are the same for all 13 spans.
INTERVALS: dict[Span, str] = {span: span.label for span in Span.all()}

KLINES_LIMIT = 1000
KLINES_DEFAULT_LIMIT = 500
AGG_TRADES_LIMIT = 1000
#: ``endTime - startTime`` of an aggTrades request must be below one hour.
AGG_TRADES_MAX_WINDOW_MS = 3_600_000 - 1
BOOK_DEPTHS = (5, 10, 20, 50, 100, 500, 1000, 5000)
FUTURES_BOOK_DEPTHS = (5, 10, 20, 50, 100, 500, 1000)
SPOT_WEIGHT_PER_MINUTE = 6000
FUTURES_WEIGHT_PER_MINUTE = 2400
USAGE_HEADER = "X-MBX-USED-WEIGHT-1M"
FUNDING_LIMIT = 1000
#: fundingRate has its own budget of 500 requests per 5 min (100/min): charged at
#: 2400 / 100 against the futures weight budget, the limiter keeps under it
FUNDING_WEIGHT = FUTURES_WEIGHT_PER_MINUTE // 100
OPEN_INTEREST_LIMIT = 500
#: openInterestHist: 1000 requests per 5 min (200/min) -> 2400 / 200
OPEN_INTEREST_WEIGHT = FUTURES_WEIGHT_PER_MINUTE // 200
OPEN_INTEREST_PERIODS = tuple(
    Span.parse(p) for p in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
)

_SPANS = tuple(INTERVALS)


#: (largest ``limit``, weight) steps, smallest first; a larger limit costs ``_LAST``.
_SPOT_DEPTH_STEPS = ((100, 5), (500, 25), (1000, 50))
_FUTURES_DEPTH_STEPS = ((50, 2), (100, 5), (500, 10))
#: futures klines: ``limit`` below 100 -> 1, below 500 -> 2, up to 1000 -> 5, else 10
_FUTURES_KLINES_STEPS = ((99, 1), (499, 2), (1000, 5))
_SPOT_FLAT = {"klines": 2, "aggTrades": 4, "exchangeInfo": 20}
_FUTURES_FLAT = {"aggTrades": 20, "exchangeInfo": 1}


def _stepped(steps: tuple[tuple[int, int], ...], last: int, limit: int) -> int:
    return next((weight for top, weight in steps if limit <= top), last)


def spot_weight(endpoint: str, limit: int = 0) -> int:
    """Request weight of a spot endpoint: ``klines``, ``aggTrades``, ``depth``, ``exchangeInfo``."""
    if endpoint == "depth":
        return _stepped(_SPOT_DEPTH_STEPS, 250, limit)
    return _SPOT_FLAT[endpoint]


def futures_weight(endpoint: str, limit: int = 0) -> int:
    """Request weight of a USD-M futures endpoint (weights depend on ``limit``)."""
    if endpoint == "klines":
        return _stepped(_FUTURES_KLINES_STEPS, 10, limit)
    if endpoint == "depth":
        return _stepped(_FUTURES_DEPTH_STEPS, 20, limit)
    return _FUTURES_FLAT[endpoint]


_FUTURES_KLINES = futures_weight("klines", KLINES_LIMIT)


def _archive(data_type: DataType, spans: tuple[Span, ...] = ()) -> ArchiveFeature:
    """data.binance.vision (``archives.py``): monthly files for closed months, daily files
    for closed days (published the next morning), each with a ``.CHECKSUM`` (sha256)."""
    return ArchiveFeature(
        data_type,
        markets=("spot", "linear"),
        granularities=(ArchiveGranularity.MONTHLY, ArchiveGranularity.DAILY),
        spans=spans,
        lag_days=1,
        checksum=True,
        docs_url="https://github.com/binance/binance-public-data",
    )


CAPABILITY = Capability(
    exchange="binance",
    features=(
        features.rest_candles(page_limit=KLINES_LIMIT, spans=_SPANS, weight=spot_weight("klines")),
        features.rest_trades(page_limit=AGG_TRADES_LIMIT, weight=spot_weight("aggTrades")),
        features.rest_book(book_depths=BOOK_DEPTHS, weight=spot_weight("depth", 100)),
        features.rest_funding(page_limit=FUNDING_LIMIT, weight=FUNDING_WEIGHT),
        features.rest_mark(page_limit=KLINES_LIMIT, spans=_SPANS, weight=_FUTURES_KLINES),
        features.rest_index(page_limit=KLINES_LIMIT, spans=_SPANS, weight=_FUTURES_KLINES),
        features.rest_open_interest(
            page_limit=OPEN_INTEREST_LIMIT,
            spans=OPEN_INTEREST_PERIODS,
            history_days=30,
            weight=OPEN_INTEREST_WEIGHT,
            alternative="keep the dataset's update schedule running: it records open "
            "interest from the day it was added",
        ),
        features.ws_trades(channel="aggTrade"),
        features.ws_candles(spans=_SPANS, channel="kline_<span>"),
        features.ws_book(book_depths=BOOK_DEPTHS, channel="depth@100ms"),
        # USD-M only; at most one liquidation per symbol and second is pushed (a snapshot)
        features.ws_liquidations(channel="forceOrder"),
    ),
    weight_per_minute=SPOT_WEIGHT_PER_MINUTE,
    docs_url="https://developers.binance.com/docs/binance-spot-api-docs/rest-api",
    markets=("spot", "linear_perpetual"),
    archives=(_archive(DataType.OHLC, _SPANS), _archive(DataType.TRADES)),
)
