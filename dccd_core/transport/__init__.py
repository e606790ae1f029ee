"""The wire: one HTTP client per exchange, weight limiter, retry policy, paginators."""

from .http import HttpClient, HttpStats, JsonResponse
from .limiter import WeightLimiter
from .retry import DEFAULT_RETRY, RetryPolicy, TransientError, should_retry

__all__ = [
    "DEFAULT_RETRY",
    "HttpClient",
    "HttpStats",
    "JsonResponse",
    "RetryPolicy",
    "TransientError",
    "WeightLimiter",
    "should_retry",
]
