"""Weight-based rate limiting, one limiter per exchange (or per host budget).

Exchanges such as Binance meter requests by *weight* per minute (spot: 6000 weight/min,
``/api/v3/klines`` costs 2, ``/api/v3/aggTrades`` 4;
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits) and report
what this IP has used in a header (``X-MBX-USED-WEIGHT-1M``). Going over costs a 429,
and ignoring 429s costs an IP ban (418), so we pace ourselves *before* the limit:

* a token bucket refilled at ``safety * weight_per_minute`` per window, with a small
  burst (a tenth of the window's budget), paces steady traffic;
* the usage header corrects for what the bucket cannot see (other processes on the
  same IP, a server window that started earlier): once the reported weight reaches
  ``safety`` of the limit, every caller sleeps until the server's window rolls over.
  Binance's windows are calendar minutes, so the rollover is computed on wall time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["WeightLimiter"]

log = logging.getLogger("dccd.transport")


class WeightLimiter:
    """Token bucket by request weight, corrected by the exchange's usage header."""

    def __init__(
        self,
        weight_per_minute: int,
        *,
        usage_header: str | None = None,
        safety: float = 0.9,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if weight_per_minute <= 0:
            raise ValueError("weight_per_minute must be positive")
        if not 0 < safety <= 1:
            raise ValueError("safety must be in (0, 1]")
        self.weight_per_minute = weight_per_minute
        self.usage_header = usage_header
        self.safety = safety
        self.window_s = window_s
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._budget = weight_per_minute * safety
        self._rate_per_s = self._budget / window_s
        self._capacity = max(self._budget / 10.0, 1.0)
        self._tokens = self._capacity
        self._updated = clock()
        self._blocked_until = 0.0  # monotonic
        self._lock = asyncio.Lock()
        #: seconds spent waiting in ``acquire`` (for progress reports and benches).
        self.waited_s = 0.0
        #: last usage the exchange reported, if any.
        self.last_used_weight: int | None = None

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate_per_s)
        self._updated = now

    async def acquire(self, weight: int = 1) -> None:
        """Wait until ``weight`` may be spent, then spend it.

        Requests heavier than the burst are let through once the bucket is full (they
        drive the balance negative, so the next ones wait for it to recover).
        """
        async with self._lock:
            while True:
                now = self._clock()
                if self._blocked_until > now:
                    delay = self._blocked_until - now
                else:
                    self._refill()
                    need = min(float(weight), self._capacity)
                    if self._tokens >= need - 1e-9:  # float slack: never spin on dust
                        self._tokens -= weight
                        return
                    delay = max((need - self._tokens) / self._rate_per_s, 1e-3)
                self.waited_s += delay
                await self._sleep(delay)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the usage header of a response; block until rollover near the limit."""
        if self.usage_header is None:
            return
        raw = headers.get(self.usage_header)
        if raw is None:
            return
        try:
            used = int(raw)
        except ValueError:
            return
        self.last_used_weight = used
        if used >= self._budget:
            wall = self._wall()
            until_rollover = self.window_s - (wall % self.window_s) + 0.05
            blocked_until = self._clock() + until_rollover
            if blocked_until > self._blocked_until:
                log.info(
                    "used weight %d of %d: pausing %.2fs until the window rolls over",
                    used,
                    self.weight_per_minute,
                    until_rollover,
                )
                self._blocked_until = blocked_until
                self._tokens = 0.0
                self._updated = self._clock()

    async def pause(self, seconds: float) -> None:
        """A 429/418 asked the exchange's clients to wait ``seconds``. The client's pause
        gate already holds this process; a bucket shared with other processes
        (``SharedWeightLimiter``) passes it on to them."""

    async def aclose(self) -> None:
        """Release what the limiter holds (a shared bucket's database connection)."""
