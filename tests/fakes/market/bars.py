"""Seeded candles: one bar model (``seeded_bar``) in the two wire shapes the fakes send."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from tests.fakes.market.frames import ohlc_frame

__all__ = [
    "Bar",
    "CentBar",
    "SeededCandles",
    "bar_at",
    "bars_frame",
    "cent_bars_frame",
    "seeded_bar",
    "unit",
]


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by ``parts`` (the seed and what is drawn)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def seeded_bar(
    seed: object,
    span: int,
    ts: int,
    *,
    base_price: float,
    decimals: int,
    hole_rate: float,
    price_key: tuple[int, ...],
) -> tuple[float, float, float, float] | None:
    """``(open, high, low, close)`` of the bar opening at ``ts`` on a ``span`` grid (same
    unit for both), or None for a hole (no trade in the bar).

    ``price_key`` is what the price draws hash besides the seed (the fakes grew apart
    here: ``(ts,)`` or ``(span, ts)``; kept so their data stay as the tests know them).
    """
    if unit(seed, "hole", span, ts) < hole_rate:
        return None
    base = base_price * (1 + 0.05 * (unit(seed, "drift", span, ts // (span * 50)) - 0.5))
    o = round(base * (1 + 0.01 * (unit(seed, "o", *price_key) - 0.5)), decimals)
    c = round(base * (1 + 0.01 * (unit(seed, "c", *price_key) - 0.5)), decimals)
    h = round(max(o, c) * (1 + 0.002 * unit(seed, "h", *price_key)), decimals)
    lo = round(min(o, c) * (1 - 0.002 * unit(seed, "l", *price_key)), decimals)
    return o, h, lo, c


# -- candles as decimal strings on a ms grid (Bybit, OKX) -----------------------------------


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
        prices = seeded_bar(
            self.seed, span_ms, ts_ms, base_price=self.base_price, decimals=1,
            hole_rate=self.hole_rate, price_key=(ts_ms,),
        )  # fmt: skip
        if prices is None:
            return None
        o, h, lo, c = prices
        v = round(1 + 100 * unit(self.seed, "v", span_ms, ts_ms), 4)
        q = round(v * (o + c) / 2, 4)
        return Bar(ts_ms, str(o), str(h), str(lo), str(c), str(v), str(q))

    def bars(self, start_ms: int, end_ms: int, span_ms: int, offset_ms: int = 0) -> list[Bar]:
        """Bars opening in ``[start_ms, end_ms)`` on the grid ``offset + k*span``, oldest first."""
        first = start_ms - (start_ms - offset_ms) % span_ms
        if first < start_ms:
            first += span_ms
        bars = (self.bar(ts, span_ms) for ts in range(first, end_ms, span_ms))
        return [bar for bar in bars if bar is not None]


def bars_frame(bars: Sequence[Bar]) -> pl.DataFrame:
    """Decimal-string bars as the store's ohlc rows (no trade counts on these wires)."""
    return ohlc_frame(
        ts=[b.ts_ms * 1_000_000 for b in bars],
        open=[float(b.open) for b in bars],
        high=[float(b.high) for b in bars],
        low=[float(b.low) for b in bars],
        close=[float(b.close) for b in bars],
        volume=[float(b.volume) for b in bars],
        quote_volume=[float(b.quote_volume) for b in bars],
    )


# -- candles as cent floats on a second grid (Coinbase, Kraken) ----------------------------


@dataclass(frozen=True, slots=True)
class CentBar:
    """One candle; prices rounded to cents, volume to 1e-8 (as the wire sends them)."""

    ts_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    count: int


def bar_at(seed: str, ts_s: int, span_s: int, hole_rate: float = 0.03) -> CentBar | None:
    """The bar opening at ``ts_s`` or None (no trading in that bar)."""
    prices = seeded_bar(
        seed, span_s, ts_s, base_price=40_000.0, decimals=2, hole_rate=hole_rate,
        price_key=(span_s, ts_s),
    )  # fmt: skip
    if prices is None:
        return None
    o, h, lo, c = prices
    v = round(0.5 + 50 * unit(seed, "v", span_s, ts_s), 8)
    vwap = round((o + c + h + lo) / 4, 1)
    return CentBar(ts_s, o, h, lo, c, v, vwap, 1 + int(200 * unit(seed, "n", span_s, ts_s)))


def cent_bars_frame(bars: Sequence[CentBar], *, with_counts: bool) -> pl.DataFrame:
    """Cent bars as the store's ohlc rows; ``with_counts``: the wire also carries the
    vwap (quote volume = vwap x volume) and the trade count (Kraken, not Coinbase)."""
    return ohlc_frame(
        ts=[b.ts_s * 10**9 for b in bars],
        open=[b.open for b in bars],
        high=[b.high for b in bars],
        low=[b.low for b in bars],
        close=[b.close for b in bars],
        volume=[b.volume for b in bars],
        quote_volume=[b.vwap * b.volume for b in bars] if with_counts else None,
        trades=[b.count for b in bars] if with_counts else None,
    )
