"""Row checks of funding-rate datasets (``checks.audit_frame`` calls them per file).

* ``funding_interval_regular``  consecutive funding times lie one funding interval
  apart: a whole number of hours out of ``FUNDING_INTERVALS_H`` (+-1 s: Binance stamps
  some funding times a few ms late), and where the exchange states the interval
  (BitMEX ``interval_h``) exactly that. A longer gap is a funding event the exchange did
  not serve (or a hole), a shorter one a stray row (WARN: exchanges do change a
  contract's interval, which shows here once and is then regular again).
* ``funding_rate_plausible``  ``|rate| <= MAX_PLAUSIBLE_RATE`` (5 % per interval: the
  exchanges clamp funding to a few %; the store refuses anything >= 100 % outright,
  ``domain.sanity``) (WARN: an extreme but real rate is possible, a unit slip likelier).
"""

from __future__ import annotations

import polars as pl

__all__ = [
    "FUNDING_CHECKS",
    "FUNDING_INTERVALS_H",
    "MAX_PLAUSIBLE_RATE",
    "audit_funding",
]

FUNDING_CHECKS = ("funding_interval_regular", "funding_rate_plausible")
#: every funding interval the four exchanges use (hours)
FUNDING_INTERVALS_H = (1, 2, 4, 6, 8)
MAX_PLAUSIBLE_RATE = 0.05
_HOUR_NS = 3_600 * 1_000_000_000
_SLACK_NS = 1_000_000_000

DESCRIPTIONS = {
    "funding_interval_regular": "Consecutive funding times lie one funding interval apart.",
    "funding_rate_plausible": f"|rate| <= {MAX_PLAUSIBLE_RATE:g} per funding interval.",
}


def audit_funding(frame: pl.DataFrame, examples: int) -> dict[str, tuple[int, pl.DataFrame]]:
    """Offending-row count and first offenders of each funding check on one sorted file."""
    gap = pl.col("ts").diff()
    hours = ((gap + _SLACK_NS) // _HOUR_NS).alias("gap_h")
    whole = (gap - hours * _HOUR_NS).abs() <= _SLACK_NS
    stated = pl.col("interval_h").is_null() | (hours == pl.col("interval_h"))
    regular = whole & hours.is_in(list(FUNDING_INTERVALS_H)) & stated
    checked = frame.with_columns(hours, regular.fill_null(True).alias("_ok"))
    irregular = checked.filter(~pl.col("_ok")).drop("_ok")
    wild = frame.filter(pl.col("rate").abs() > MAX_PLAUSIBLE_RATE)
    return {
        "funding_interval_regular": (irregular.height, irregular.head(examples)),
        "funding_rate_plausible": (wild.height, wild.head(examples)),
    }
