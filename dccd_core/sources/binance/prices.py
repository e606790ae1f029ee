"""Binance USD-M mark and index price candles: ``/fapi/v1/markPriceKlines`` (``symbol``)
and ``/fapi/v1/indexPriceKlines`` (``pair``: the underlying, BTCUSDT).

Docs: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price-Kline-Candlestick-Data
and .../Index-Price-Kline-Candlestick-Data. Like ``/fapi/v1/klines``: ``interval``,
``startTime``/``endTime`` inclusive ms, ``limit`` default 500, max 1500 (dccd asks 1000,
as for klines), oldest first, weight by ``limit`` as klines. Rows
``[openTime, "open", "high", "low", "close", "ignore", closeTime, ...]``: the volume
fields are documented "ignore" (always "0"), so dccd stores no volume.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import DataType, Span, Symbol

from .. import columns, windows
from ..base import Request
from .capability import INTERVALS, KLINES_LIMIT, futures_weight
from .symbols import usdm_symbol

__all__ = ["build_price_candles_request", "parse_price_candles"]

_PATHS = {DataType.MARK: ("/fapi/v1/markPriceKlines", "symbol"),
          DataType.INDEX: ("/fapi/v1/indexPriceKlines", "pair")}  # fmt: skip


def build_price_candles_request(
    data_type: DataType, symbol: Symbol, span: Span, start_ts: int, end_ts: int
) -> Request:
    """Mark (``DataType.MARK``) or index bars opening in ``[start_ts, end_ts)``."""
    native = usdm_symbol(
        symbol,
        f"binance {data_type} candles need a USD-M perpetual like "
        f"{symbol.base}/USDT:USDT, not {symbol}",
    )
    path, name = _PATHS[data_type]
    bars = max(1, -(-(end_ts - start_ts) // span.ns))
    limit = min(KLINES_LIMIT, bars)
    params = {name: native, "interval": INTERVALS[span],
              **windows.inclusive_ms(start_ts, end_ts), "limit": str(limit)}  # fmt: skip
    return Request(path, params, futures_weight("klines", limit))


def parse_price_candles(data: Any, data_type: DataType) -> pl.DataFrame:
    """A mark/index klines answer to bars (ohlc columns, volumes null)."""
    return columns.price_candles_frame(data, f"binance {data_type} klines")
