"""Row builders for storage tests: exact-schema frames from a few columns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from dccd_core.domain import DatasetKey

__all__ = ["BOOK", "OHLC_1H", "OHLC_1M", "TRADES", "book", "ns", "ohlc", "trades"]

OHLC_1M = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
OHLC_1H = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1h")
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
BOOK = DatasetKey.of("binance", "BTC/USDT", "book")


def ns(text: str) -> int:
    """ISO text to ns (UTC)."""
    from dccd_core.domain import to_ns

    return to_ns(text)


def ohlc(ts: Sequence[int] | np.ndarray, value: float | Sequence[float] = 1.0) -> pl.DataFrame:
    """Candles at ``ts``; ``value`` goes to every price column (to tell rows apart)."""
    n = len(ts)
    values = np.full(n, value, dtype=np.float64) if np.isscalar(value) else np.asarray(value)
    return pl.DataFrame(
        {
            "ts": np.asarray(ts, dtype=np.int64),
            "open": values,
            "high": values,
            "low": values,
            "close": values,
            "volume": np.ones(n),
            "quote_volume": values,
            "trades": np.arange(n, dtype=np.int64),
        }
    )


def trades(
    ids: Sequence[str], ts: Sequence[int] | np.ndarray, price: float | Sequence[float] = 1.0
) -> pl.DataFrame:
    """Trades with ids ``ids`` at ``ts``; ``price`` tells versions of a row apart."""
    n = len(ids)
    prices = np.full(n, price, dtype=np.float64) if np.isscalar(price) else np.asarray(price)
    return pl.DataFrame(
        {
            "ts": np.asarray(ts, dtype=np.int64),
            "trade_id": pl.Series(list(ids), dtype=pl.String),
            "price": prices,
            "amount": np.ones(n),
            "side": pl.Series(["buy" if i % 2 else "sell" for i in range(n)], dtype=pl.String),
        }
    )


def book(ts: Sequence[int], levels: int = 3, price: float = 1.0) -> pl.DataFrame:
    """``levels`` bids and asks per snapshot ts."""
    rows_ts, sides, lv = [], [], []
    for t in ts:
        for side in ("bid", "ask"):
            for level in range(levels):
                rows_ts.append(t)
                sides.append(side)
                lv.append(level)
    n = len(rows_ts)
    return pl.DataFrame(
        {
            "ts": pl.Series(rows_ts, dtype=pl.Int64),
            "side": sides,
            "level": pl.Series(lv, dtype=pl.Int32),
            "price": np.full(n, price),
            "amount": np.ones(n),
        }
    )
