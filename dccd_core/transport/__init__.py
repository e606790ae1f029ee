"""The wire: one HTTP client per exchange, weight limiter, retry policy, paginators."""

from .http import HttpClient, HttpStats, JsonResponse
from .limiter import WeightLimiter
from .paginate import Chunk, PageStats, candle_windows, paginate_candles, paginate_trades
from .retry import DEFAULT_RETRY, RetryPolicy, TransientError, should_retry

__all__ = [
    "DEFAULT_RETRY",
    "Chunk",
    "HttpClient",
    "HttpStats",
    "JsonResponse",
    "PageStats",
    "RetryPolicy",
    "TransientError",
    "WeightLimiter",
    "candle_windows",
    "paginate_candles",
    "paginate_trades",
    "should_retry",
]
