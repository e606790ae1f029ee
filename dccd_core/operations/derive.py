"""``derive_candles``: candles of any span computed from the stored trades.

Why: some exchanges keep a short candle history (Kraken: the last 720 bars) or lack a
span (Coinbase has no 4h), while their trades go back years. A bar is a pure function
of the trades inside it, so the lake can build the candles itself, for any span.

How, in bounded memory: the trades are read one UTC day at a time (a lazy
``Store.scan`` of that day's period file), aggregated into *partial* bars
(``aggregate_trades``), and partials of a bar that spans several days (1w) are merged
with the bar's earlier partials (``combine_partials``: first open, max high, min low,
last close, summed volumes and counts) before the bar is written. So a bar is always
the aggregate of its whole window, never of one file. Memory holds one day of trades
plus a handful of bars.

Rules:

* bars overlapping ``[start, end)`` are computed (a 1w bar touching the window is
  read whole: its trades may lie outside the window);
* ``open``/``close`` are the first/last trade in stored order (ts, then trade id);
  ``volume`` = sum(amount), ``quote_volume`` = sum(price * amount), ``trades`` = count;
* a bar with no trades is absent, never zero-filled;
* only final bars are written: closed (its end <= now) and with its whole window in
  the trades' coverage (``Store.coverage``): a bar built from half-fetched trades would
  be stored as if final. Such bars are counted in ``DeriveResult`` and left out;
* the rows go through the store's buffered writer with provenance
  ``transport: derived``; the final bars' windows are recorded as the candle
  dataset's coverage, so "no trades in this 4h" is not a hole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from dccd_core.domain import (
    NS_PER_DAY,
    ConfigError,
    DatasetKey,
    DataType,
    Span,
    TimeLike,
    now_ns,
)
from dccd_core.storage import Coverage, Store, WriteResult, resolve_range

__all__ = [
    "DeriveResult",
    "aggregate_trades",
    "bar_open_expr",
    "combine_partials",
    "derive_candles",
]

_OHLC_COLUMNS = ("ts", "open", "high", "low", "close", "volume", "quote_volume", "trades")


@dataclass(frozen=True, slots=True)
class DeriveResult:
    """What one derivation did.

    ``start_ts``/``end_ts``: the bar-aligned window considered (whole bars overlapping
    the request). ``bars``: final bars written. ``trades``: trades read.
    ``open_bars``: bars not closed yet (not written). ``uncovered``: bar windows whose
    trades are not (fully) in the trades' coverage (not written; backfill the trades).
    """

    key: DatasetKey
    start_ts: int
    end_ts: int
    bars: int
    trades: int
    open_bars: int
    uncovered: tuple[tuple[int, int], ...]
    write: WriteResult


def bar_open_expr(span: Span, column: str = "ts") -> pl.Expr:
    """``Span.floor`` as a polars expression: the open time (ns) of each row's bar.

    ``Span.floor`` is ``ts - (ts - offset) % span`` (offset: 4 days for weekly bars,
    which open on Monday 00:00 UTC). ``(ts - offset) mod span`` equals
    ``(ts + shift) mod span`` with ``shift = -Span.floor(0)``, which keeps the left
    operand non-negative (no sign convention of ``%`` involved).
    """
    ts = pl.col(column)
    shift = -span.floor(0)
    return ts - (ts + shift) % span.ns


def aggregate_trades(trades: pl.DataFrame | pl.LazyFrame, span: Span) -> pl.DataFrame:
    """Trades (stored order: ts, trade id) to partial bars in the ohlc schema.

    Pure: a frame in, a frame out. Each output row is the aggregate of the given
    trades of one bar; feed several partials of one bar to ``combine_partials``.
    """
    lazy = trades.lazy() if isinstance(trades, pl.DataFrame) else trades
    price, amount = pl.col("price"), pl.col("amount")
    return (
        lazy.select("ts", "price", "amount")
        .with_columns(bar_open_expr(span).alias("bar"))
        .group_by("bar", maintain_order=True)
        .agg(
            price.first().alias("open"),
            price.max().alias("high"),
            price.min().alias("low"),
            price.last().alias("close"),
            amount.sum().alias("volume"),
            (price * amount).sum().alias("quote_volume"),
            pl.len().cast(pl.Int64).alias("trades"),
        )
        .rename({"bar": "ts"})
        .select(_OHLC_COLUMNS)
        .sort("ts", maintain_order=True)
        .collect()
    )


def combine_partials(partials: pl.DataFrame) -> pl.DataFrame:
    """Merge partial bars of equal ``ts`` given in time order (earlier partial first)."""
    if partials.height == 0:
        return partials
    return (
        partials.group_by("ts", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("quote_volume").sum(),
            pl.col("trades").sum(),
        )
        .sort("ts", maintain_order=True)
    )


def _bar_window(span: Span, start_ts: int, end_ts: int) -> tuple[int, int]:
    """Whole bars overlapping ``[start_ts, end_ts)``."""
    first = span.floor(start_ts)
    last_end = span.floor(end_ts - 1) + span.ns
    return first, last_end


def _final_windows(
    span: Span, lo: int, hi: int, now: int, coverage: Coverage
) -> tuple[list[tuple[int, int]], int, list[tuple[int, int]]]:
    """Split the bars of ``[lo, hi)`` into runs of final bars, a count of bars not
    closed yet, and runs of bars whose trades have holes (widened to whole bars)."""
    closed_end = max(lo, min(hi, span.floor(now)))
    open_bars = (hi - closed_end) // span.ns
    uncovered = Coverage.of(
        (span.floor(a), span.floor(b - 1) + span.ns) for a, b in coverage.holes(lo, closed_end)
    )
    runs: list[tuple[int, int]] = []
    cursor = lo
    for a, b in uncovered:
        if a > cursor:
            runs.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < closed_end:
        runs.append((cursor, closed_end))
    return runs, open_bars, list(uncovered)


def derive_candles(
    store: Store,
    key: DatasetKey,
    start: TimeLike,
    end: TimeLike,
    *,
    now_ts: int | None = None,
    provenance: Mapping[str, str] | None = None,
) -> DeriveResult:
    """Write the final bars of ``key`` (an ohlc dataset) overlapping ``[start, end)``,
    computed from the stored trades of the same exchange and symbol.

    Raises ``ConfigError`` if ``key`` is not an ohlc key. See the module docstring for
    which bars are written. Safe to re-run: bars are merged on ``ts`` (newer wins).
    """
    if key.data_type is not DataType.OHLC or key.span is None:
        raise ConfigError(f"derive_candles writes candles: {key} is not an ohlc dataset")
    span = key.span
    start_ts, end_ts = resolve_range(start, end)
    assert start_ts is not None and end_ts is not None
    if end_ts <= start_ts:
        return DeriveResult(key, start_ts, start_ts, 0, 0, 0, (), WriteResult())
    trades_key = DatasetKey(key.exchange, key.symbol, DataType.TRADES)
    lo, hi = _bar_window(span, start_ts, end_ts)
    now = now_ns() if now_ts is None else now_ts
    final, open_bars, uncovered = _final_windows(span, lo, hi, now, store.coverage(trades_key))
    meta = {"source": key.exchange, "derived_from": "trades", **(provenance or {})}
    meta["transport"] = "derived"
    bars = trades = 0
    with store.writer(key, provenance=meta) as writer:
        for run_lo, run_hi in final:
            n_bars, n_trades = _derive_run(store, trades_key, span, run_lo, run_hi, writer.add)
            bars += n_bars
            trades += n_trades
            writer.cover(run_lo, run_hi)  # recorded once the run's bars are committed
    return DeriveResult(key, lo, hi, bars, trades, open_bars, tuple(uncovered), writer.result)


def _derive_run(
    store: Store,
    trades_key: DatasetKey,
    span: Span,
    lo: int,
    hi: int,
    emit: Callable[[pl.DataFrame], None],
) -> tuple[int, int]:
    """Aggregate ``[lo, hi)`` (whole bars) day by day; emit each bar once it is whole."""
    bars = trades = 0
    carry: pl.DataFrame | None = None
    day = lo - lo % NS_PER_DAY
    while day < hi:
        chunk_lo, chunk_hi = max(day, lo), min(day + NS_PER_DAY, hi)
        lazy = store.scan(trades_key, chunk_lo, chunk_hi)
        partial = aggregate_trades(lazy, span)
        trades += int(partial.get_column("trades").sum())
        if carry is not None and carry.height:
            partial = combine_partials(pl.concat([carry, partial], how="vertical"))
        whole = partial.filter(pl.col("ts") + span.ns <= chunk_hi)
        carry = partial.filter(pl.col("ts") + span.ns > chunk_hi)
        if whole.height:
            emit(whole)
            bars += whole.height
        day += NS_PER_DAY
    return bars, trades
