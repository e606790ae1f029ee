"""Binance USD-M open interest history: ``GET /futures/data/openInterestHist``.

Docs: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics

* ``symbol``, ``period`` (5m 15m 30m 1h 2h 4h 6h 12h 1d), ``limit`` default 30, max 500,
  ``startTime`` / ``endTime`` (ms); oldest first. "Only the data of the latest 1 month
  is available": the capability refuses an older start (``history_days=30``), and a
  dataset kept by its update schedule is complete from the day it was added.
* IP limit 1000 requests per 5 minutes (200 a minute): charged ``OPEN_INTEREST_WEIGHT``
  against the futures budget of 2,400 a minute.
* Rows ``{"symbol": "BTCUSDT", "sumOpenInterest": "20403.63700000" (base),
  "sumOpenInterestValue": "150570784.07809979" (USDT), "timestamp": 1583127900000}``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import Span, Symbol

from .. import columns, windows
from ..base import Request
from .capability import OPEN_INTEREST_LIMIT, OPEN_INTEREST_PERIODS, OPEN_INTEREST_WEIGHT
from .symbols import usdm_symbol

__all__ = ["build_open_interest_request", "parse_open_interest"]


def build_open_interest_request(
    symbol: Symbol, span: Span, start_ts: int, end_ts: int
) -> Request:
    """Samples stamped in ``[start_ts, end_ts)`` (the window holds <= 500 periods)."""
    native = usdm_symbol(
        symbol, f"binance open interest needs a USD-M perpetual like {symbol.base}/USDT:USDT"
    )
    windows.require_period(span, OPEN_INTEREST_PERIODS, "binance")
    params = {"symbol": native, "period": span.label,
              **windows.inclusive_ms(start_ts, end_ts),
              "limit": str(OPEN_INTEREST_LIMIT)}  # fmt: skip
    return Request("/futures/data/openInterestHist", params, OPEN_INTEREST_WEIGHT)


def parse_open_interest(data: Any) -> pl.DataFrame:
    """An ``openInterestHist`` answer to open-interest rows, oldest first."""
    what = "binance openInterestHist"
    keys = ("timestamp", "sumOpenInterest", "sumOpenInterestValue")
    rows = columns.json_list(data, what)
    times, amounts, values = columns.object_columns(rows, keys, what, "sample")
    return columns.open_interest_frame(times, amounts, what, values=values)
