"""Bybit funding history: ``GET /v5/market/funding/history``.

Docs: https://bybit-exchange.github.io/docs/v5/market/history-fund-rate

* ``category`` (linear / inverse), ``symbol``, ``startTime`` / ``endTime`` (ms), ``limit``
  1..200 (default 200). Passing ``startTime`` alone is an error (retCode 10001), so both
  are always sent; the page is the newest ``limit`` rows up to ``endTime``, newest first.
* Rows: ``{"symbol": "BTCUSDT", "fundingRate": "0.0001",
  "fundingRateTimestamp": "1672764000000"}``: every value a string; no mark price and
  no interval in the history.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import Symbol

from .. import columns, windows
from ..base import Request
from .capability import FUNDING_LIMIT
from .parse import result_list
from .symbols import category_of, native_symbol

__all__ = ["build_funding_request", "parse_funding"]


def build_funding_request(symbol: Symbol, start_ts: int, end_ts: int) -> Request:
    """Funding times in ``[start_ts, end_ts)`` (both bounds inclusive ms on the wire);
    the caller's window holds <= ``FUNDING_LIMIT`` rows, so the newest-first page is whole."""
    category = category_of(symbol)
    windows.require_perpetual(
        category != "spot", f"bybit funding needs a perpetual like {symbol}:{symbol.quote}"
    )
    params = {"category": category, "symbol": native_symbol(symbol),
              **windows.inclusive_ms(start_ts, end_ts), "limit": str(FUNDING_LIMIT)}  # fmt: skip
    return Request("/v5/market/funding/history", params)


def parse_funding(data: Any) -> pl.DataFrame:
    """A funding-history body to funding rows, oldest first."""
    what = "bybit funding/history"
    keys = ("fundingRateTimestamp", "fundingRate")
    times, rates = columns.object_columns(result_list(data, what), keys, what, "row")
    ts = columns.ms_to_ns_column("ts", times, what)
    return columns.funding_frame(ts, rates, what).sort("ts")
