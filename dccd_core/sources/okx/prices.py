"""OKX mark and index price candles: ``GET /api/v5/market/history-mark-price-candles``
(``instId`` the swap, BTC-USDT-SWAP) and ``/api/v5/market/history-index-candles``
(``instId`` the index, BTC-USDT).

Docs: https://www.okx.com/docs-v5/en/#public-data-rest-api-get-mark-price-candlesticks-history
and #public-data-rest-api-get-index-candlesticks-history. ``bar`` as for candles (the
UTC-aligned ``6Hutc``... for 6h and longer), ``after``/``before`` exclusive ms, ``limit``
at most 100, newest first. Rows ``["ts", "o", "h", "l", "c", "confirm"]``, no volume.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import DataType, Span, Symbol

from .. import columns, windows
from ..base import Request
from .capability import BARS, CANDLES_LIMIT
from .parse import parse_data
from .symbols import inst_type_of, native_symbol

__all__ = ["build_price_candles_request", "parse_price_candles"]

_PATHS = {DataType.MARK: "/api/v5/market/history-mark-price-candles",
          DataType.INDEX: "/api/v5/market/history-index-candles"}  # fmt: skip


def build_price_candles_request(
    data_type: DataType, symbol: Symbol, span: Span, start_ts: int, end_ts: int
) -> Request:
    """Mark or index bars opening in ``[start_ts, end_ts)`` (the window holds <= 100)."""
    windows.require_perpetual(
        inst_type_of(symbol) == "SWAP",
        f"okx {data_type} candles need a perpetual swap like {symbol}:{symbol.quote}",
    )
    inst_id = native_symbol(symbol)
    if data_type is DataType.INDEX:  # the index of BTC-USDT-SWAP is BTC-USDT
        inst_id = inst_id.removesuffix("-SWAP")
    params = {"instId": inst_id, "bar": BARS[span], **windows.exclusive_ms(start_ts, end_ts),
              "limit": str(CANDLES_LIMIT)}  # fmt: skip
    return Request(_PATHS[data_type], params)


def parse_price_candles(data: Any, data_type: DataType) -> pl.DataFrame:
    """A mark/index candles body to bars, oldest first (ohlc columns, volumes null)."""
    what = f"okx history-{data_type} candles"
    return columns.price_candles_frame(parse_data(data, what), what)
