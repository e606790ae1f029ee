"""The data of the fake Binance: lazily and arithmetically generated from a seed.

A year of 1m candles or 10M trades cost nothing until asked for, and the truth is known
exactly (see ``tests.fakes.binance`` for the rules); bodies are built column-wise with
polars string ops, never per row in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

__all__ = ["SPAN_MS", "MarketData"]

_U64 = np.uint64
_MASK = (1 << 64) - 1
SPAN_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}
_WEEK_OFFSET_MS = 4 * 86_400_000  # weeks open on Monday; the epoch was a Thursday


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _dec(name: str, decimals: int) -> pl.Expr:
    """Exact decimal text of integer units ``name / 10**decimals``, 8 decimals like Binance."""
    scale = 10**decimals
    return pl.concat_str(
        [
            (pl.col(name) // scale).cast(pl.Utf8),
            pl.lit("."),
            (pl.col(name) % scale).cast(pl.Utf8).str.zfill(decimals),
            pl.lit("0" * (8 - decimals)),
        ]
    )


def _json_text(name: str, decimals: int) -> pl.Expr:
    return pl.concat_str([pl.lit('"'), _dec(name, decimals), pl.lit('"')])


def _join_rows(frame: pl.DataFrame, row: pl.Expr) -> bytes:
    """``[row, row, ...]`` built by polars string ops (no per-row Python)."""
    if frame.height == 0:
        return b"[]"
    text = frame.select(row.str.join(",")).item()
    return b"[" + str(text).encode() + b"]"


@dataclass
class MarketData:
    """The deterministic data of one market (one symbol on spot or futures)."""

    seed: int
    listing_ms: int
    first_id: int = 1_000
    num: int = 1  # trades per ``den`` ms
    den: int = 100
    quiet_every: int = 300_000
    quiet_ms: int = 3 * 3_600_000
    burst_every: int = 50_000
    burst_len: int = 1_500
    hole_every: int = 500
    holes_ms: frozenset[int] = frozenset()
    #: Binance's re-sent aggregates (ccxt issue #8329): aggregate ``k`` of a key is sent
    #: as a copy (``f``/``l``, time, price, size) of the earlier aggregate ``k`` of its
    #: value; its own trades do not exist, so it is no trade of the truth.
    replays: dict[int, int] = field(default_factory=dict)
    #: aggregates sent this many ms before their true time (garbage, not a replay)
    backdated_ms: dict[int, int] = field(default_factory=dict)

    # -- candles ---------------------------------------------------------------

    def bar_opens(self, interval: str, start_ms: int, end_ms: int) -> np.ndarray:
        """Open times (ms) of the existing bars with open in ``[start_ms, end_ms]``."""
        step = SPAN_MS[interval]
        offset = _WEEK_OFFSET_MS if interval == "1w" else 0
        first_open = self.listing_ms - (self.listing_ms - offset) % step
        lo = max(start_ms, first_open)
        lo = lo + (-(lo - offset)) % step
        if lo > end_ms:
            return np.empty(0, dtype=np.int64)
        opens = np.arange(lo, end_ms + 1, step, dtype=np.int64)
        h = _mix(opens.astype(_U64) ^ _U64(self.seed * 7919 + step))
        keep = (h % _U64(self.hole_every)) != 0
        if self.holes_ms:
            keep &= ~np.isin(opens, np.fromiter(self.holes_ms, dtype=np.int64))
        return opens[keep]

    def bar_values(self, interval: str, opens: np.ndarray) -> dict[str, np.ndarray]:
        """Integer-unit OHLCV of the bars (cents for prices, 1e-3 for volume)."""
        step = SPAN_MS[interval]
        h = _mix(opens.astype(_U64) ^ _U64(self.seed * 104729 + step * 3))
        h2 = _mix(h)
        open_c = (_U64(2_000_000) + h % _U64(1_000_000)).astype(np.int64)
        close_c = open_c + ((h >> _U64(20)) % _U64(2001)).astype(np.int64) - 1000
        high_c = np.maximum(open_c, close_c) + ((h >> _U64(32)) % _U64(500)).astype(np.int64)
        low_c = np.minimum(open_c, close_c) - ((h >> _U64(42)) % _U64(500)).astype(np.int64)
        vol_m = ((h2 % _U64(100_000)) + _U64(1)).astype(np.int64)
        quote_c = ((h2 >> _U64(20)) % _U64(10_000_000_000)).astype(np.int64)
        trades = ((h2 >> _U64(50)) % _U64(1000)).astype(np.int64)
        return {
            "open": open_c,
            "high": high_c,
            "low": low_c,
            "close": close_c,
            "volume": vol_m,
            "quote": quote_c,
            "trades": trades,
        }

    def klines_body(self, interval: str, opens: np.ndarray) -> bytes:
        """The JSON body of a klines page, built column-wise (as Binance sends it)."""
        v = self.bar_values(interval, opens)
        step = SPAN_MS[interval]
        frame = pl.DataFrame({"t": opens, **v}).with_columns(
            (pl.col("volume") // 2).alias("tbv"), (pl.col("quote") // 2).alias("tbq")
        )
        row = pl.concat_str(
            [
                pl.lit("["),
                pl.col("t").cast(pl.Utf8),
                pl.lit(","),
                _json_text("open", 2),
                pl.lit(","),
                _json_text("high", 2),
                pl.lit(","),
                _json_text("low", 2),
                pl.lit(","),
                _json_text("close", 2),
                pl.lit(","),
                _json_text("volume", 3),
                pl.lit(","),
                (pl.col("t") + step - 1).cast(pl.Utf8),
                pl.lit(","),
                _json_text("quote", 2),
                pl.lit(","),
                pl.col("trades").cast(pl.Utf8),
                pl.lit(","),
                _json_text("tbv", 3),
                pl.lit(","),
                _json_text("tbq", 2),
                pl.lit(',"0"]'),
            ]
        )
        return _join_rows(frame, row)

    def candles_frame(self, interval: str, opens: np.ndarray) -> pl.DataFrame:
        v = self.bar_values(interval, opens)
        return pl.DataFrame(
            {
                "ts": opens * 1_000_000,
                "open": v["open"] / 100,
                "high": v["high"] / 100,
                "low": v["low"] / 100,
                "close": v["close"] / 100,
                "volume": v["volume"] / 1000,
                "quote_volume": v["quote"] / 100,
                "trades": v["trades"],
            }
        )

    # -- trades ----------------------------------------------------------------

    def _base_ms(self, k: Any) -> Any:
        """``den / num`` ms per trade, plus a quiet gap every ``quiet_every`` trades."""
        return (
            self.listing_ms + (k * self.den) // self.num + (k // self.quiet_every) * self.quiet_ms
        )

    def trade_ms(self, k: np.ndarray) -> np.ndarray:
        within = k % self.burst_every
        anchor = np.where(within < self.burst_len, k - within, k)
        return np.asarray(self._base_ms(anchor), dtype=np.int64)

    def trade_ms_scalar(self, k: int) -> int:
        within = k % self.burst_every
        return int(self._base_ms(k - within if within < self.burst_len else k))

    def first_k_at(self, t_ms: int) -> int:
        """The smallest k with ``trade_ms(k) >= t_ms``."""
        lo, hi = 0, 1
        while self.trade_ms_scalar(hi) < t_ms:
            hi *= 2
        while lo < hi:
            mid = (lo + hi) // 2
            if self.trade_ms_scalar(mid) < t_ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def trade_values(self, k: np.ndarray) -> dict[str, np.ndarray]:
        h = _mix(k.astype(_U64) ^ _U64(self.seed * 1_000_003 + 17))
        return {
            "price": (_U64(2_000_000) + h % _U64(1_000_000)).astype(np.int64),
            "qty": ((h >> _U64(20)) % _U64(100_000) + _U64(1)).astype(np.int64),
            "m": ((h >> _U64(40)) & _U64(1)).astype(bool),
        }

    def agg_body(self, k: np.ndarray) -> bytes:
        """The JSON body of an aggTrades page (``a``/``f``/``l``/``T`` numbers, ``p``/``q``
        strings, as the live API sends them)."""
        src = k
        if self.replays:
            src = np.array([self.replays.get(int(i), int(i)) for i in k], dtype=np.int64)
        v = self.trade_values(src)
        frame = pl.DataFrame(
            {
                "a": k + self.first_id,
                "T": self.trade_ms(src),
                "p": v["price"],
                "q": v["qty"],
                "m": v["m"],
                "f": (src + self.first_id) * 2,
            }
        )
        if self.backdated_ms:
            back = np.array([self.backdated_ms.get(int(i), 0) for i in k], dtype=np.int64)
            frame = frame.with_columns(pl.col("T") - pl.Series(back))
        row = pl.concat_str(
            [
                pl.lit('{"a":'),
                pl.col("a").cast(pl.Utf8),
                pl.lit(',"p":'),
                _json_text("p", 2),
                pl.lit(',"q":'),
                _json_text("q", 5),
                pl.lit(',"f":'),
                pl.col("f").cast(pl.Utf8),
                pl.lit(',"l":'),
                (pl.col("f") + 1).cast(pl.Utf8),
                pl.lit(',"T":'),
                pl.col("T").cast(pl.Utf8),
                pl.lit(',"m":'),
                pl.when(pl.col("m")).then(pl.lit("true")).otherwise(pl.lit("false")),
                pl.lit(',"M":true}'),
            ]
        )
        return _join_rows(frame, row)

    def trades_frame(self, k: np.ndarray) -> pl.DataFrame:
        v = self.trade_values(k)
        return pl.DataFrame(
            {
                "ts": self.trade_ms(k) * 1_000_000,
                "trade_id": pl.Series((k + self.first_id).astype(np.int64)).cast(pl.Utf8),
                "price": v["price"] / 100,
                "amount": v["qty"] / 100_000,
                "side": np.where(v["m"], "sell", "buy"),
            }
        )


