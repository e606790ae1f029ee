"""OKX funding history: ``GET /api/v5/public/funding-rate-history``.

Docs: https://www.okx.com/docs-v5/en/#public-data-rest-api-get-funding-rate-history

* ``instId`` (a SWAP), ``before`` (rows newer than this ``fundingTime``, exclusive),
  ``after`` (rows older than it, exclusive), ``limit`` (100 in the older docs, 400 now:
  dccd asks 100, valid under both). Newest first. "Retrieve data from the last 3 months"
  only: the capability refuses an older start (``history_days``).
* Rate limit: 10 requests per 2 s per IP and instrument.
* Rows: ``{"instId", "instType": "SWAP", "fundingRate": "0.0000746604960499",
  "realizedRate": "0.0000746572360545", "fundingTime": "1703059200000", "method",
  "formulaType"}``, all strings. ``realizedRate`` is the rate actually charged at
  ``fundingTime``; ``fundingRate`` the rate set for it. dccd stores the realized rate,
  falling back to ``fundingRate`` where it is empty.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import Symbol

from .. import columns, windows
from ..base import Request
from .capability import FUNDING_LIMIT
from .parse import parse_data
from .symbols import inst_type_of, native_symbol

__all__ = ["build_funding_request", "parse_funding"]


def build_funding_request(symbol: Symbol, start_ts: int, end_ts: int) -> Request:
    """Funding times in ``[start_ts, end_ts)``: ``before``/``after`` are exclusive, so
    ``before`` is the ms just before the window and ``after`` its end."""
    windows.require_perpetual(
        inst_type_of(symbol) == "SWAP",
        f"okx funding needs a perpetual swap like {symbol}:{symbol.quote}",
    )
    params = {"instId": native_symbol(symbol), **windows.exclusive_ms(start_ts, end_ts),
              "limit": str(FUNDING_LIMIT)}  # fmt: skip
    return Request("/api/v5/public/funding-rate-history", params)


def parse_funding(data: Any) -> pl.DataFrame:
    """A funding-rate-history body to funding rows, oldest first."""
    what = "okx funding-rate-history"
    rows = parse_data(data, what)
    times, rates = columns.object_columns(rows, ("fundingTime", "fundingRate"), what, "row")
    realized = [r.get("realizedRate") or rate for r, rate in zip(rows, rates, strict=True)]
    ts = columns.ms_to_ns_column("ts", times, what)
    return columns.funding_frame(ts, realized, what).sort("ts")
