"""Where a backfill starts: after what is stored, or at the exchange's first data.

``start="last"`` continues after the last stored row (else the recorded coverage's
end, else a lookback); ``start="origin"`` finds the exchange's first data by probing
(the source's direct answer where it has one, else exponential then binary search over
page windows), never by paging from 1970. Its own module: the probing is a search of
its own, apart from the paging and committing of the run.
"""

from __future__ import annotations

from dccd_core.domain import (
    EARLIEST_TS,
    NS_PER_DAY,
    DatasetKey,
    DataType,
    NoCapability,
    iso_datetime,
)
from dccd_core.sources.base import Source
from dccd_core.storage import Store
from dccd_core.transport.paginate import FUNDING_STEP, clip_rows

__all__ = [
    "DEFAULT_CANDLE_LOOKBACK_NS",
    "DEFAULT_TRADE_LOOKBACK_NS",
    "default_start",
    "find_origin",
]

DEFAULT_CANDLE_LOOKBACK_NS = 30 * NS_PER_DAY
DEFAULT_TRADE_LOOKBACK_NS = NS_PER_DAY
TRADE_PROBE_NS = NS_PER_DAY


def default_start(key: DatasetKey, store: Store, end_ts: int) -> int:
    """``last``: after the last stored row, else the coverage's end, else a lookback."""
    candidates: list[int] = []
    last = store.last_ts(key)
    if last is not None:
        # a candle is done once stored; trades sharing the last ms may not all be
        if key.span is not None:
            candidates.append(key.span.floor(last) + key.span.ns)
        else:
            candidates.append(last)
    coverage_end = store.coverage(key).end
    if coverage_end is not None:
        candidates.append(coverage_end)
    if candidates:
        return max(candidates)
    sparse = key.span is not None or key.data_type is DataType.FUNDING  # few rows a day
    lookback = DEFAULT_CANDLE_LOOKBACK_NS if sparse else DEFAULT_TRADE_LOOKBACK_NS
    return end_ts - lookback


async def find_origin(source: Source, key: DatasetKey, end_ts: int) -> int:
    """The ts of the exchange's first candle/trade of ``key`` before ``end_ts``.

    Trades: the source's direct answer where it has one (Binance: aggregate trade 0).
    Otherwise probe windows of one page (candles) or one day (trades): go back
    exponentially from ``end_ts`` until a window is empty, then binary-search the
    boundary. Assumes no gap longer than a window after the listing (a longer one makes
    the origin found later than the true one, never earlier).
    """
    symbol = key.symbol
    if key.data_type is DataType.TRADES:
        first = await source.fetch_first_trade_ts(symbol)
        if first is not None:
            return first
    if key.data_type is DataType.FUNDING:
        feature = source.capability.feature(DataType.FUNDING)
        limit = (feature.page_limit if feature is not None else None) or 100
        width = limit * FUNDING_STEP.ns
        align = FUNDING_STEP.floor
    elif key.span is not None:
        feature = source.capability.feature(key.data_type)
        limit = (feature.page_limit if feature is not None else None) or 500
        width = limit * key.span.ns
        align = key.span.floor
    else:
        width = TRADE_PROBE_NS
        align = floor_ms

    async def probe(at: int) -> int | None:
        """The first ts in ``[at, at + width)``, or None."""
        if key.data_type is DataType.FUNDING:
            rows = await source.fetch_funding(symbol, at, at + width)
        elif key.span is not None:
            rows = await source.span_page(key.data_type)(symbol, key.span, at, at + width)
        else:
            page = await source.fetch_trades_page(symbol, at, at + width, None)
            rows = page.rows
        rows = clip_rows(rows, at, at + width)
        return int(rows.get_column("ts").min()) if rows.height else None  # type: ignore[arg-type]

    hi = align(end_ts - width)
    found = await probe(hi)
    step = width
    lo: int | None = None
    while lo is None:
        candidate = align(hi - step)
        if candidate < EARLIEST_TS:
            if found is None:
                raise NoCapability(
                    f"{key.exchange} has no {key.data_type} of {key.symbol} before "
                    f"{iso_datetime(end_ts)}"
                )
            candidate = align(EARLIEST_TS)
        first = await probe(candidate)
        if first is None and found is not None:
            lo = candidate
        elif first is not None:
            hi, found = candidate, first
            if candidate <= EARLIEST_TS:
                return first
        elif candidate <= EARLIEST_TS:
            raise NoCapability(
                f"{key.exchange} has no {key.data_type} of {key.symbol} before "
                f"{iso_datetime(end_ts)}"
            )
        else:
            hi = candidate  # still nothing: keep going back (a dead market's tail)
        step *= 2
    assert found is not None
    while hi - lo > width:
        mid = align(lo + (hi - lo) // 2)
        if mid <= lo or mid >= hi:
            break
        first = await probe(mid)
        if first is None:
            lo = mid
        else:
            hi, found = mid, first
    # [lo, lo + width) is empty and hi <= lo + width: nothing lies before ``hi``
    return found


def floor_ms(ts: int) -> int:
    return ts - ts % 1_000_000
