"""Retry policy as data, and the one place that decides what is worth retrying.

Transient faults (timeouts, connection resets, 5xx, invalid or truncated JSON, and the
error codes an exchange documents as transient, see ``dccd_core.transport.errors``) are
retried with exponential backoff and full jitter (sleep ``uniform(0, min(max_s,
base_s * 2**attempt))``, AWS Architecture Blog, "Exponential Backoff And Jitter"):
full jitter spreads the retries of concurrent pages so they do not hit a recovering
exchange in lockstep. Rate limits (429/418) are not retried here: the HTTP client
pauses the whole exchange instead (see ``dccd_core.transport.http``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dccd_core.domain import TransportError

__all__ = ["DEFAULT_RETRY", "RetryPolicy", "TransientError", "should_retry"]


class TransientError(TransportError):
    """A fault that may clear on its own: timeout, reset, 5xx, broken JSON, a documented
    transient error code (Binance -1000, Kraken EService:Busy, ...).

    ``kind`` is one of ``timeout``, ``connect``, ``server``, ``json``. It never reaches
    a user: after the retry budget it becomes ``RetryExhausted``.
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one request.

    ``attempts``: total tries of a transient fault (1 = no retry).
    ``base_s`` / ``max_s``: the backoff cap grows as ``base_s * 2**n`` up to ``max_s``.
    ``rate_limit_attempts``: how many 429 pauses one request may sit through.
    ``max_pause_s``: a Retry-After longer than this is a ban, not a pause.
    """

    attempts: int = 8
    base_s: float = 0.2
    max_s: float = 10.0
    rate_limit_attempts: int = 10
    max_pause_s: float = 300.0

    def backoff_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter sleep before retry number ``attempt`` (0-based)."""
        cap = min(self.max_s, self.base_s * (2**attempt))
        return (rng or random).uniform(0.0, cap)


DEFAULT_RETRY = RetryPolicy()


def should_retry(error: BaseException) -> bool:
    """True for faults that a later identical request may not meet."""
    return isinstance(error, TransientError)
