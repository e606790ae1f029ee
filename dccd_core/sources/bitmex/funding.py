"""BitMEX funding history: ``GET /api/v1/funding`` (the request: ``rest.build_funding_request``).

Docs: https://www.bitmex.com/api/explorer/#!/Funding/Funding_get

* ``symbol`` (``XBTUSD``, ``XBTUSDT``), ``startTime`` / ``endTime`` (ISO-8601),
  ``count`` (at most 1,000 like every table query), ``reverse=false``: oldest first.
* Rows: ``{"timestamp": "2020-05-07T12:00:00.000Z", "symbol": "XBTUSD",
  "fundingInterval": "2000-01-01T08:00:00.000Z", "fundingRate": -0.00164,
  "fundingRateDaily": -0.00492}``: the rate a JSON number, the interval a BitMEX
  "timespan" (a time since 2000-01-01: 08:00 is 8 hours). No mark price.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import NS_PER_S, errors, to_ns

from .. import columns

__all__ = ["parse_funding"]

#: BitMEX writes a timespan as a time on 2000-01-01 (``fundingInterval``)
_TIMESPAN_ZERO = to_ns("2000-01-01")
_NS_PER_HOUR = 3_600 * NS_PER_S


def parse_funding(data: Any) -> pl.DataFrame:
    """A ``/funding`` answer (a JSON list of objects) to funding rows, oldest first."""
    what = "bitmex funding"
    if not isinstance(data, list):
        raise errors.UnexpectedPayload(f"{what}: expected a JSON list, got {str(data)[:80]}")
    times, rates = columns.object_columns(data, ("timestamp", "fundingRate"), what, "funding row")
    ts = columns.iso_to_ns_column("ts", times, what)
    spans = [r.get("fundingInterval") for r in data]
    hours: list[int | None] = [None] * len(spans)
    known = [i for i, span in enumerate(spans) if span is not None]
    if known:
        ns = columns.iso_to_ns_column("fundingInterval", [spans[i] for i in known], what)
        for i, value in zip(known, ns.to_list(), strict=True):
            offset = value - _TIMESPAN_ZERO
            if offset <= 0 or offset % _NS_PER_HOUR:
                raise errors.UnexpectedPayload(
                    f"{what}: fundingInterval {spans[i]!r} is not whole hours"
                )
            hours[i] = offset // _NS_PER_HOUR
    return columns.funding_frame(ts, rates, what, interval_h=hours).sort("ts")
