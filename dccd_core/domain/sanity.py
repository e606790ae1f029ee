"""Plausibility of rows coming from an exchange, checked before anything is stored.

A parser proves a page has the right *shape*; this proves its *values* can be true:
timestamps between the Bitcoin genesis block and tomorrow (a unit slip — seconds read
as ms, ms as ns — lands in 1970 or in the far future), prices finite and positive,
sizes finite and non-negative, sides from the contract. One bad row rejects the whole
page: a page is the unit the exchange answered with, and a page that is partly wrong
cannot be trusted to be right elsewhere.
"""

from __future__ import annotations

import polars as pl

from .errors import UnexpectedPayload
from .timeutil import NS_PER_DAY, iso_datetime, now_ns, to_ns
from .types import DataType

__all__ = ["EARLIEST_TS", "check_rows"]

#: No exchange has crypto market data before the Bitcoin genesis block.
EARLIEST_TS = to_ns("2009-01-03")

_POSITIVE = {
    DataType.OHLC: ("open", "high", "low", "close"),
    DataType.TRADES: ("price",),
    DataType.BOOK: ("price",),
}
_NON_NEGATIVE = {
    DataType.OHLC: ("volume",),
    DataType.TRADES: ("amount",),
    DataType.BOOK: ("amount",),
}
_SIDES = {DataType.TRADES: ("buy", "sell"), DataType.BOOK: ("bid", "ask")}


def _reject(origin: str, data_type: DataType, count: int, problem: str) -> UnexpectedPayload:
    return UnexpectedPayload(
        f"{origin}: {data_type} page rejected, {count} row(s) with {problem}; "
        "nothing from this page was stored"
    )


def check_rows(
    rows: pl.DataFrame, data_type: DataType, *, origin: str, now_ts: int | None = None
) -> None:
    """Raise ``UnexpectedPayload`` if any row of ``rows`` cannot be real market data."""
    if rows.height == 0:
        return
    latest = (now_ts if now_ts is not None else now_ns()) + NS_PER_DAY
    ts = rows.get_column("ts")
    bad_ts = ts.is_null() | (ts < EARLIEST_TS) | (ts > latest)
    if bad_ts.any():
        first = ts.filter(bad_ts).drop_nulls()
        shown = iso_datetime(int(first[0])) if first.len() else "null"
        raise _reject(
            origin,
            data_type,
            int(bad_ts.sum()),
            f"an implausible timestamp (e.g. {shown}: a unit error?)",
        )
    for name in _POSITIVE[data_type]:
        column = rows.get_column(name)
        bad = column.is_null() | column.is_nan() | column.is_infinite() | (column <= 0)
        if bad.any():
            raise _reject(
                origin, data_type, int(bad.sum()), f"a {name} that is not a positive number"
            )
    for name in _NON_NEGATIVE[data_type]:
        column = rows.get_column(name)
        bad = column.is_null() | column.is_nan() | column.is_infinite() | (column < 0)
        if bad.any():
            raise _reject(
                origin, data_type, int(bad.sum()), f"a {name} that is not a number >= 0"
            )
    sides = _SIDES.get(data_type)
    if sides is not None:
        bad = ~rows.get_column("side").is_in(list(sides)).fill_null(False)
        if bad.any():
            raise _reject(origin, data_type, int(bad.sum()), f"a side not in {sides}")
