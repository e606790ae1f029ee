"""Deterministic trades and candles for the Coinbase and Kraken fakes.

Everything is a pure function of (seed, index) or (seed, span, bar time): the tests ask
the fake for the truth instead of recording it. The tape has bursts of trades sharing
one microsecond, some placed across page boundaries.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

__all__ = ["Bar", "Tape", "bar_at"]


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Bar:
    """One candle; prices rounded to cents, volume to 1e-8 (as the wire sends them)."""

    ts_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    count: int


def bar_at(seed: str, ts_s: int, span_s: int, hole_rate: float = 0.03) -> Bar | None:
    """The bar opening at ``ts_s`` or None (no trading in that bar)."""
    if _unit(seed, "hole", span_s, ts_s) < hole_rate:
        return None
    base = 40_000.0 * (1 + 0.05 * (_unit(seed, "drift", span_s, ts_s // (span_s * 50)) - 0.5))
    o = round(base * (1 + 0.01 * (_unit(seed, "o", span_s, ts_s) - 0.5)), 2)
    c = round(base * (1 + 0.01 * (_unit(seed, "c", span_s, ts_s) - 0.5)), 2)
    h = round(max(o, c) * (1 + 0.002 * _unit(seed, "h", span_s, ts_s)), 2)
    lo = round(min(o, c) * (1 - 0.002 * _unit(seed, "l", span_s, ts_s)), 2)
    v = round(0.5 + 50 * _unit(seed, "v", span_s, ts_s), 8)
    vwap = round((o + c + h + lo) / 4, 1)
    return Bar(ts_s, o, h, lo, c, v, vwap, 1 + int(200 * _unit(seed, "n", span_s, ts_s)))


@dataclass(frozen=True, slots=True)
class Tape:
    """``n`` trades from ``start_us`` on: ids ``first_id``..; ts in microseconds.

    ``bursts`` maps a trade index to a burst size: that many trades share one
    microsecond, starting at the index (put one across each page boundary you test).
    ``max_gap_us`` bounds the pause between groups (3 s for history tapes; a few ms for
    the live tapes the streaming fakes play in real time).
    """

    seed: str
    start_us: int
    n: int
    first_id: int = 1
    bursts: tuple[tuple[int, int], ...] = ()
    max_gap_us: int = 3_000_000

    def rows(self) -> list[tuple[int, int, float, float, bool]]:
        """``(trade_id, ts_us, price, amount, taker_buys)`` oldest first."""
        rng = random.Random(self.seed)
        burst_at = dict(self.bursts)
        out: list[tuple[int, int, float, float, bool]] = []
        ts = self.start_us
        i = 0
        while i < self.n:
            size = 1 if rng.random() < 0.8 else rng.randint(2, 6)
            if i in burst_at:
                size = burst_at[i]
            else:  # land exactly on the next burst
                nxt = min((b for b in burst_at if b > i), default=self.n)
                size = min(size, nxt - i)
            for _ in range(min(size, self.n - i)):
                price = round(40_000 + 500 * (rng.random() - 0.5), 2)
                amount = round(rng.uniform(0.0001, 2.0), 8)
                out.append((self.first_id + i, ts, price, amount, rng.random() < 0.5))
                i += 1
            ts += rng.randint(1, self.max_gap_us)  # up to 3 s between groups by default
        return out
