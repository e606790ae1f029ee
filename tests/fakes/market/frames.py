"""Truth in the store's schemas: what a complete backfill must store."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dccd_core.domain import DataType, schema_for

__all__ = [
    "OHLC_SCHEMA",
    "TRADES_SCHEMA",
    "ohlc_frame",
    "trades_frame",
]


OHLC_SCHEMA = pl.Schema(schema_for(DataType.OHLC))
TRADES_SCHEMA = pl.Schema(schema_for(DataType.TRADES))




def ohlc_frame(
    *,
    ts: Sequence[int],
    open: Sequence[float],
    high: Sequence[float],
    low: Sequence[float],
    close: Sequence[float],
    volume: Sequence[float],
    quote_volume: Sequence[float | None] | None = None,
    trades: Sequence[int | None] | None = None,
) -> pl.DataFrame:
    """Truth candles in the ohlc schema; a column a wire does not carry is left null."""
    nulls = [None] * len(ts)
    columns = {
        "ts": ts, "open": open, "high": high, "low": low, "close": close, "volume": volume,
        "quote_volume": nulls if quote_volume is None else quote_volume,
        "trades": nulls if trades is None else trades,
    }  # fmt: skip
    return pl.DataFrame(columns, schema=OHLC_SCHEMA)


def trades_frame(
    *,
    ts: Sequence[int],
    trade_id: Sequence[str],
    price: Sequence[float],
    amount: Sequence[float],
    side: Sequence[str],
) -> pl.DataFrame:
    """Truth trades in the trades schema."""
    columns = {"ts": ts, "trade_id": trade_id, "price": price, "amount": amount, "side": side}
    return pl.DataFrame(columns, schema=TRADES_SCHEMA)
