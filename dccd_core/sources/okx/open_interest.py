"""OKX open interest history: ``GET /api/v5/rubik/stat/contracts/open-interest-history``.

Docs: https://www.okx.com/docs-v5/en/#trading-statistics-rest-api-get-contract-open-interest-history

* ``instId`` (a swap), ``period`` (``5m`` ``15m`` ``30m`` ``1H`` ``2H`` ``4H``, and for
  6 hours and longer the UTC-aligned ``6Hutc`` ``12Hutc`` ``1Dutc`` as for candles),
  ``begin`` / ``end`` (ms, both exclusive), ``limit`` up to 100; the newest first. With
  both bounds and a window of at most 100 periods one page is whole.
* "This endpoint can retrieve the latest 1,440 data entries": the history is the last
  1,440 periods of the asked ``period`` (5 days of 5m, 60 days of 1H, ~4 years of 1D),
  declared as ``history_bars`` so an older start is refused before a request.
* Rows are arrays of strings ``[ts, oi, oiCcy, oiUsd]``: ``oi`` in contracts, ``oiCcy``
  in the base currency (what dccd stores as ``open_interest``, as for Bybit's linear
  swaps), ``oiUsd`` the value in USD (stored as ``open_interest_value``; USD, not USDT,
  for a USDT swap: OKX values it in USD).

The other two OKX endpoints are not used: ``public/open-interest`` serves the current
value only (no history), ``rubik/stat/contracts/open-interest-volume`` sums every
contract of a currency (``ccy``), not one instrument.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import Span, Symbol, errors

from .. import columns, windows
from ..base import Request
from .capability import OPEN_INTEREST_LIMIT, OPEN_INTEREST_PERIODS
from .parse import parse_data
from .symbols import inst_type_of, native_symbol

__all__ = ["build_open_interest_request", "parse_open_interest"]


def build_open_interest_request(symbol: Symbol, span: Span, start_ts: int, end_ts: int) -> Request:
    """Samples stamped in ``[start_ts, end_ts)`` (the window holds <= 100 periods):
    ``begin`` is the ms just before the window, ``end`` its end, both exclusive."""
    windows.require_perpetual(
        inst_type_of(symbol) == "SWAP",
        f"okx open interest needs a perpetual swap like {symbol}:{symbol.quote}",
    )
    windows.require_period(span, OPEN_INTEREST_PERIODS, "okx")
    bounds = windows.exclusive_ms(start_ts, end_ts)
    params = {"instId": native_symbol(symbol), "period": OPEN_INTEREST_PERIODS[span],
              "begin": bounds["before"], "end": bounds["after"],
              "limit": str(OPEN_INTEREST_LIMIT)}  # fmt: skip
    return Request("/api/v5/rubik/stat/contracts/open-interest-history", params)


def parse_open_interest(data: Any) -> pl.DataFrame:
    """An open-interest-history body to rows, oldest first.

    Sample (the docs' shape)::

        {"code": "0", "msg": "", "data": [["1701417600000", "731377.57500501",
          "7313.77575005", "283902854.81"]]}
    """
    what = "okx open-interest-history"
    rows = parse_data(data, what)
    if not all(isinstance(r, list) and len(r) >= 4 for r in rows):
        raise errors.UnexpectedPayload(
            f"{what}: expected rows [ts, oi, oiCcy, oiUsd], got {rows!r:.200}"
        )
    return columns.open_interest_frame(
        [r[0] for r in rows], [r[2] for r in rows], what, values=[r[3] for r in rows]
    )
