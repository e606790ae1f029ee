"""Binance USD-M funding history: ``GET /fapi/v1/fundingRate``.

Docs: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-History

* ``symbol``, ``startTime`` / ``endTime`` (ms, inclusive), ``limit`` default 100, max 1000;
  oldest first from ``startTime`` ("returns startTime + limit" when the range holds more).
* Rows: ``{"symbol", "fundingRate": "0.00010000", "fundingTime": 1570636800000,
  "markPrice": "34287.54619963"}``: the rate and mark price as strings, the time as a
  number. The oldest rows carry ``"markPrice": ""`` (ccxt treats it as unknown too).
* Its own rate limit, shared with ``/fapi/v1/fundingInfo``: 500 requests per 5 minutes
  per IP (100 a minute). Each request is charged ``FUNDING_WEIGHT`` against the futures
  budget of 2,400 a minute, so the limiter never asks more than 100 a minute.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import Symbol

from .. import columns, windows
from ..base import Request
from .capability import FUNDING_LIMIT, FUNDING_WEIGHT
from .symbols import usdm_symbol

__all__ = ["build_funding_request", "parse_funding"]


def build_funding_request(symbol: Symbol, start_ts: int, end_ts: int) -> Request:
    """Funding times in ``[start_ts, end_ts)``; the caller's window holds <= 1000."""
    native = usdm_symbol(
        symbol,
        f"binance funding needs a USD-M perpetual like {symbol.base}/USDT:USDT, not {symbol}",
    )
    window = windows.inclusive_ms(start_ts, end_ts)
    params = {"symbol": native, **window, "limit": str(FUNDING_LIMIT)}
    return Request("/fapi/v1/fundingRate", params, FUNDING_WEIGHT)


def parse_funding(data: Any) -> pl.DataFrame:
    """A ``fundingRate`` answer (a JSON list of objects) to funding rows, sorted by ts."""
    what = "binance fundingRate"
    rows = columns.json_list(data, what)
    times, rates = columns.object_columns(rows, ("fundingTime", "fundingRate"), what, "funding row")
    marks = [r.get("markPrice") for r in rows]
    ts = columns.ms_to_ns_column("ts", times, what)
    return columns.funding_frame(ts, rates, what, mark_prices=marks).sort("ts")
