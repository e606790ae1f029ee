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

from dccd_core.domain import DataType, Span, Symbol, errors

from .. import columns
from ..base import Request
from .capability import OPEN_INTEREST_INTERVALS, OPEN_INTEREST_LIMIT
from .parse import parse_result
from .symbols import category_of, native_symbol

__all__ = ["build_open_interest_request", "parse_open_interest"]


def build_open_interest_request(
    symbol: Symbol, span: Span, start_ts: int, end_ts: int
) -> Request:
    """Samples stamped in ``[start_ts, end_ts)`` (the window holds <= 200 periods)."""
    category = category_of(symbol)
    if category == "spot":
        raise errors.NoCapability(
            f"bybit open interest needs a perpetual like {symbol}:{symbol.quote}"
        )
    if span not in OPEN_INTEREST_INTERVALS:
        periods = " ".join(s.label for s in OPEN_INTEREST_INTERVALS)
        raise errors.NoCapability(f"bybit has no {span} open interest: its periods are {periods}")
    params = {
        "category": category,
        "symbol": native_symbol(symbol),
        "intervalTime": OPEN_INTEREST_INTERVALS[span],
        "startTime": str(columns.ceil_ms(start_ts)),
        "endTime": str(columns.ceil_ms(end_ts) - 1),
        "limit": str(OPEN_INTEREST_LIMIT),
    }
    return Request("/v5/market/open-interest", params)


def parse_open_interest(data: Any) -> pl.DataFrame:
    """An open-interest body to rows, oldest first."""
    what = "bybit open-interest"
    rows = parse_result(data, what).get("list")
    if not isinstance(rows, list):
        raise errors.UnexpectedPayload(f"{what}: expected a result list, got {rows!r:.200}")
    times, amounts = columns.object_columns(rows, ("timestamp", "openInterest"), what, "sample")
    fields = {
        "ts": columns.ms_to_ns_column("ts", times, what),
        "open_interest": columns.float_column("open_interest", amounts, what),
    }
    return columns.to_schema(DataType.OPEN_INTEREST, fields).sort("ts")
