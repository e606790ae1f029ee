"""Bybit open interest history: ``GET /v5/market/open-interest``.

Docs: https://bybit-exchange.github.io/docs/v5/market/open-interest

* ``category`` linear / inverse, ``symbol``, ``intervalTime`` (5min 15min 30min 1h 4h
  1d), ``startTime`` / ``endTime`` (ms), ``limit`` 1..200 (default 50), ``cursor``; the
  newest first. With both bounds and a window of at most 200 periods one page is whole.
* Rows ``{"openInterest": "461134384.00000000", "timestamp": "1669571400000"}``, strings:
  in base coin for linear contracts, in USD (contracts of 1 USD) for inverse ones; no
  value in quote, so ``open_interest_value`` stays null.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import Span, Symbol

from .. import columns, windows
from ..base import Request
from .capability import OPEN_INTEREST_INTERVALS, OPEN_INTEREST_LIMIT
from .parse import result_list
from .symbols import category_of, native_symbol

__all__ = ["build_open_interest_request", "parse_open_interest"]


def build_open_interest_request(
    symbol: Symbol, span: Span, start_ts: int, end_ts: int
) -> Request:
    """Samples stamped in ``[start_ts, end_ts)`` (the window holds <= 200 periods)."""
    category = category_of(symbol)
    windows.require_perpetual(
        category != "spot", f"bybit open interest needs a perpetual like {symbol}:{symbol.quote}"
    )
    windows.require_period(span, OPEN_INTEREST_INTERVALS, "bybit")
    params = {"category": category, "symbol": native_symbol(symbol),
              "intervalTime": OPEN_INTEREST_INTERVALS[span],
              **windows.inclusive_ms(start_ts, end_ts),
              "limit": str(OPEN_INTEREST_LIMIT)}  # fmt: skip
    return Request("/v5/market/open-interest", params)


def parse_open_interest(data: Any) -> pl.DataFrame:
    """An open-interest body to rows, oldest first."""
    what = "bybit open-interest"
    keys = ("timestamp", "openInterest")
    times, amounts = columns.object_columns(result_list(data, what), keys, what, "sample")
    return columns.open_interest_frame(times, amounts, what)
