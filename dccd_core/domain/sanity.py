"""Plausibility of rows coming from an exchange, checked before anything is stored.

A parser proves a page has the right *shape*; this proves its *values* can be true:
timestamps between the Bitcoin genesis block and tomorrow (a unit slip — seconds read
as ms, ms as ns — lands in 1970 or in the far future), prices finite and positive,
sizes finite and non-negative, sides from the contract. One bad row rejects the whole
page: a page is the unit the exchange answered with, and a page that is partly wrong
cannot be trusted to be right elsewhere.

Where an exchange declares that its trade ids are integers rising with time
(``Source.monotonic_trade_ids``), ``check_trade_id_order`` also refuses a page in which
one trade has a greater id than another but an earlier time, and the paginators carry
its answer from page to page so the seams are checked too.
"""

from __future__ import annotations

import polars as pl

from .errors import UnexpectedPayload
from .timeutil import NS_PER_DAY, iso_datetime, now_ns, to_ns
from .types import DataType

__all__ = ["EARLIEST_TS", "MAX_ABS_FUNDING_RATE", "IdEdges", "check_rows", "check_trade_id_order"]

#: No exchange has crypto market data before the Bitcoin genesis block.
EARLIEST_TS = to_ns("2009-01-03")

_POSITIVE = {
    DataType.OHLC: ("open", "high", "low", "close"),
    DataType.TRADES: ("price",),
    DataType.BOOK: ("price",),
    DataType.FUNDING: (),
    DataType.MARK: ("open", "high", "low", "close"),
    DataType.INDEX: ("open", "high", "low", "close"),
    DataType.OPEN_INTEREST: (),
    DataType.LIQUIDATIONS: ("price",),
}
_NON_NEGATIVE = {
    DataType.OHLC: ("volume",),
    DataType.TRADES: ("amount",),
    DataType.BOOK: ("amount",),
    DataType.FUNDING: (),
    DataType.MARK: (),
    DataType.INDEX: (),
    DataType.OPEN_INTEREST: ("open_interest",),
    DataType.LIQUIDATIONS: ("amount",),
}
#: columns that may be null (the exchange does not send them) but, when present, must
#: be positive numbers
_POSITIVE_IF_PRESENT = {
    DataType.FUNDING: ("mark_price",),
    DataType.OPEN_INTEREST: ("open_interest_value",),
}
#: no exchange's funding rate comes near 100 % of the position per interval (caps are a
#: few %: Binance clamps to +-0.75 %..3 %, Bybit/OKX similar); one that does is a unit
#: slip (percent read as a fraction, basis points) or another column read as the rate
MAX_ABS_FUNDING_RATE = 1.0
_SIDES = {
    DataType.TRADES: ("buy", "sell"),
    DataType.BOOK: ("bid", "ask"),
    DataType.LIQUIDATIONS: ("buy", "sell"),
}


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
            raise _reject(origin, data_type, int(bad.sum()), f"a {name} that is not a number >= 0")
    for name in _POSITIVE_IF_PRESENT.get(data_type, ()):
        column = rows.get_column(name).drop_nulls()
        bad = column.is_nan() | column.is_infinite() | (column <= 0)
        if bad.any():
            raise _reject(
                origin, data_type, int(bad.sum()), f"a {name} that is not a positive number"
            )
    if data_type is DataType.FUNDING:
        rate = rows.get_column("rate")
        bad = rate.is_null() | rate.is_nan() | (rate.abs() >= MAX_ABS_FUNDING_RATE)
        if bad.any():
            raise _reject(
                origin,
                data_type,
                int(bad.sum()),
                f"a funding rate that is missing or not within +-{MAX_ABS_FUNDING_RATE:g} "
                "(a percent read as a fraction?)",
            )
    sides = _SIDES.get(data_type)
    if sides is not None:
        bad = ~rows.get_column("side").is_in(list(sides)).fill_null(False)
        if bad.any():
            raise _reject(origin, data_type, int(bad.sum()), f"a side not in {sides}")


#: The rows of the lowest and the highest trade id checked so far, as (id, ts) pairs.
IdEdges = tuple[tuple[int, int], tuple[int, int]]


def check_trade_id_order(
    rows: pl.DataFrame, *, origin: str, edges: IdEdges | None = None
) -> IdEdges | None:
    """Refuse trades whose ids rise while their times fall; return the new ``edges``.

    For an exchange whose trade ids are integers that grow with time, a trade with a
    greater id than another but an earlier ts cannot be real (a page mixing fields, a
    unit slip, a replayed or reordered page). Equal times are fine (one match, many
    fills). ``edges`` (from the previous page's call) brings the lowest and highest id
    seen so far into the comparison, so a page that contradicts the one before it is
    refused too. Ids that are not integers (ids a source derived where the exchange
    sent none) are not compared.
    """
    if rows.height == 0:
        return edges
    frame = pl.DataFrame(
        {
            "id": rows.get_column("trade_id").cast(pl.Int64, strict=False),
            "ts": rows.get_column("ts"),
        }
    ).drop_nulls()
    if edges is not None:  # first: after a page of later ids, all is in id order
        frame = pl.concat(
            [
                pl.DataFrame(
                    {"id": [e[0] for e in edges], "ts": [e[1] for e in edges]}, schema=frame.schema
                ),
                frame,
            ]
        )
    if frame.height == 0:
        return edges
    ids = frame.get_column("id")
    if not (ids.len() < 2 or bool((ids.diff().slice(1) > 0).all())):  # sorted: as is
        frame = frame.sort(["id", "ts"])  # equal ids: earliest first, so no false inversion
    falls = (frame.get_column("ts").diff() < 0).fill_null(False)
    if falls.any():
        at = int(falls.arg_true()[0])
        hi_id, hi_ts = frame.row(at)
        lo_id, lo_ts = frame.row(at - 1)
        raise _reject(
            origin,
            DataType.TRADES,
            int(falls.sum()),
            f"an id rising while its time falls (trade {hi_id} at {iso_datetime(hi_ts)} "
            f"is dated before trade {lo_id} at {iso_datetime(lo_ts)}; this exchange's "
            "ids grow with time)",
        )
    first, last = frame.row(0), frame.row(frame.height - 1)
    return ((int(first[0]), int(first[1])), (int(last[0]), int(last[1])))
