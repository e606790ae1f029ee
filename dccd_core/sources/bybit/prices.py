"""Bybit mark and index price candles: ``GET /v5/market/mark-price-kline`` and
``/v5/market/index-price-kline``.

Docs: https://bybit-exchange.github.io/docs/v5/market/mark-kline and .../index-kline.
``category`` linear or inverse, ``symbol``, ``interval`` (as ``/v5/market/kline``),
``start``/``end`` inclusive ms, ``limit`` 1..1000 (default 200); the newest ``limit``
bars up to ``end``, newest first. Rows ``["startTime", "open", "high", "low", "close"]``,
all strings, no volume.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import DataType, Span, Symbol

from .. import columns, windows
from ..base import Request
from .capability import INTERVALS, KLINE_LIMIT
from .parse import parse_result
from .symbols import category_of, native_symbol

__all__ = ["build_price_candles_request", "parse_price_candles"]

#: /v5/market/mark-price-kline and /v5/market/index-price-kline
_PATHS = {t: f"/v5/market/{t}-price-kline" for t in (DataType.MARK, DataType.INDEX)}


def build_price_candles_request(
    data_type: DataType, symbol: Symbol, span: Span, start_ts: int, end_ts: int
) -> Request:
    """Mark or index bars opening in ``[start_ts, end_ts)`` (the window holds <= 1000)."""
    category = category_of(symbol)
    windows.require_perpetual(
        category != "spot",
        f"bybit {data_type} candles need a perpetual like {symbol}:{symbol.quote}",
    )
    params = {"category": category, "symbol": native_symbol(symbol), "interval": INTERVALS[span],
              **windows.inclusive_ms(start_ts, end_ts, ("start", "end")),
              "limit": str(KLINE_LIMIT)}  # fmt: skip
    return Request(_PATHS[data_type], params)


def parse_price_candles(data: Any, data_type: DataType) -> pl.DataFrame:
    """A mark/index kline body to bars, oldest first (ohlc columns, volumes null)."""
    what = f"bybit {data_type}-price-kline"
    rows = parse_result(data, what).get("list")
    return columns.price_candles_frame(rows if rows is not None else [], what)
