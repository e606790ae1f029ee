"""Deterministic market data for the Bybit and OKX fakes: candles anywhere, a trade tape.

Everything is a pure function of (seed, time), so a test knows the truth without
recording it: ``SeededCandles.bar`` for any bar, ``SeededTape`` for a fixed stretch of
trades with bursts of many trades in one millisecond (one burst bigger than two pages,
so it always straddles a page boundary). Prices and sizes are produced as the exact
decimal strings the fake sends, and the truth parses the same strings.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

__all__ = ["Bar", "SeededCandles", "SeededTape", "Trade"]


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, slots=True)
class Bar:
    """One candle as the wire sends it (decimal strings), ``ts_ms`` = open time."""

    ts_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str


@dataclass(frozen=True, slots=True)
class SeededCandles:
    """Candles of one market: deterministic, with ~3% holes (no trading in the bar)."""

    seed: str
    base_price: float = 40_000.0
    hole_rate: float = 0.03

    def bar(self, ts_ms: int, span_ms: int) -> Bar | None:
        """The bar opening at ``ts_ms`` or None for a hole."""
        if _unit(self.seed, "hole", span_ms, ts_ms) < self.hole_rate:
            return None
        drift = 1 + 0.05 * (_unit(self.seed, "drift", span_ms, ts_ms // (span_ms * 50)) - 0.5)
        o = round(self.base_price * drift * (1 + 0.01 * (_unit(self.seed, "o", ts_ms) - 0.5)), 1)
        c = round(self.base_price * drift * (1 + 0.01 * (_unit(self.seed, "c", ts_ms) - 0.5)), 1)
        h = round(max(o, c) * (1 + 0.002 * _unit(self.seed, "h", ts_ms)), 1)
        lo = round(min(o, c) * (1 - 0.002 * _unit(self.seed, "l", ts_ms)), 1)
        v = round(1 + 100 * _unit(self.seed, "v", span_ms, ts_ms), 4)
        q = round(v * (o + c) / 2, 4)
        return Bar(ts_ms, str(o), str(h), str(lo), str(c), str(v), str(q))

    def bars(self, start_ms: int, end_ms: int, span_ms: int, offset_ms: int = 0) -> list[Bar]:
        """Bars opening in ``[start_ms, end_ms)`` on the grid ``offset + k*span``, oldest first."""
        first = start_ms - (start_ms - offset_ms) % span_ms
        if first < start_ms:
            first += span_ms
        out = []
        for ts in range(first, end_ms, span_ms):
            bar = self.bar(ts, span_ms)
            if bar is not None:
                out.append(bar)
        return out


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade as the wire sends it."""

    ts_ms: int
    trade_id: int
    price: str
    size: str
    side: str  # taker side, "buy" / "sell"


@dataclass
class SeededTape:
    """``count`` trades from ``start_ms``, ids consecutive from ``first_id``, oldest first.

    Every ~20th trade opens a burst of 2-40 trades in the same ms, and the trade at
    ``big_burst_at`` opens a burst of ``big_burst`` trades (more than two pages).
    """

    seed: int
    start_ms: int
    count: int = 1_500
    first_id: int = 400_000_000
    base_price: float = 40_000.0
    big_burst: int = 230
    big_burst_at: int = 700
    size_decimals: int = 4
    trades: list[Trade] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        trades: list[Trade] = []
        ts = self.start_ms
        burst_left = 0
        price = self.base_price
        for i in range(self.count):
            if i == self.big_burst_at:
                burst_left = self.big_burst
            elif burst_left == 0 and rng.random() < 0.05:
                burst_left = rng.randint(2, 40)
            if burst_left:
                burst_left -= 1
            elif i:
                ts += rng.randint(1, 9_000)
            price = round(price * (1 + rng.uniform(-0.0005, 0.0005)), 1)
            if self.size_decimals:
                size = str(round(rng.uniform(0.0001, 2), self.size_decimals) or 1.0)
            else:  # contracts
                size = str(rng.randint(1, 50))
            side = "buy" if rng.random() < 0.5 else "sell"
            trades.append(Trade(ts, self.first_id + i, str(price), size, side))
        self.trades = trades

    @property
    def end_ms(self) -> int:
        """One ms past the last trade."""
        return self.trades[-1].ts_ms + 1

    def busiest_ms(self) -> int:
        """The ms holding the most trades (the big burst)."""
        return self.trades[self.big_burst_at].ts_ms

    def between(self, start_ms: int, end_ms: int) -> list[Trade]:
        """Trades with ``start_ms <= ts < end_ms``, oldest first."""
        return [t for t in self.trades if start_ms <= t.ts_ms < end_ms]
