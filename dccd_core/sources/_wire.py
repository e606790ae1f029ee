"""Column builders shared by the Bybit and OKX parsers: JSON lists in, typed polars columns out.

Both exchanges send numbers as strings (``"43376.1"``) and ccxt's recordings even flip
them into numbers; every builder here accepts both and refuses anything else (``None``,
booleans, words) with ``UnexpectedPayload``, so a changed wire format stops a backfill
instead of writing NaNs into the lake. The work is per column, not per row: one
Python list per field, one polars cast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import NS_PER_MS, UnexpectedPayload

__all__ = [
    "TAKER_SIDES",
    "book_frame",
    "ceil_ms",
    "float_column",
    "int_column",
    "ms_column",
    "side_column",
    "text_column",
    "transpose",
]

#: Taker-side spellings of the exchanges whose ``side`` is the taker's (Bybit, OKX).
TAKER_SIDES: dict[str, str] = {"buy": "buy", "sell": "sell", "Buy": "buy", "Sell": "sell"}


def ceil_ms(ts: int) -> int:
    """ns to whole ms rounding up: ``x_ms < ceil_ms(end_ts)`` iff ``x_ms * 1e6 < end_ts``."""
    return -(-ts // NS_PER_MS)


def transpose(rows: Any, width: int, what: str) -> list[tuple[Any, ...]]:
    """Row lists (``[[ts, o, h, ...], ...]``) to ``width`` column tuples, checking shape."""
    if not isinstance(rows, list):
        raise UnexpectedPayload(f"{what}: expected a list of rows, got {type(rows).__name__}")
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) < width:
            raise UnexpectedPayload(f"{what}: expected rows of {width}+ fields, got {row!r:.200}")
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=False))[:width]


def text_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Strings (numbers accepted and printed); nulls refused."""
    series = pl.Series(name, list(values), dtype=pl.Utf8, strict=False)
    if series.null_count():
        raise UnexpectedPayload(f"{what}: missing or unreadable {name!r} values")
    return series


def float_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Float64 from numbers or numeric strings; anything else raises."""
    text = text_column(name, values, what)
    try:
        return text.cast(pl.Float64, strict=True)
    except pl.exceptions.PolarsError:
        bad = text.filter(text.cast(pl.Float64, strict=False).is_null()).head(3).to_list()
        raise UnexpectedPayload(f"{what}: non-numeric {name!r} values {bad}") from None


def int_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Int64 from integers or integer strings; anything else raises."""
    text = text_column(name, values, what)
    try:
        return text.cast(pl.Int64, strict=True)
    except pl.exceptions.PolarsError:
        bad = text.filter(text.cast(pl.Int64, strict=False).is_null()).head(3).to_list()
        raise UnexpectedPayload(f"{what}: non-integer {name!r} values {bad}") from None


def ms_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Epoch milliseconds (int or string) to Int64 ns."""
    return (int_column(name, values, what) * NS_PER_MS).alias(name)


def side_column(values: Sequence[Any], what: str) -> pl.Series:
    """The taker side as ``buy``/``sell``: the one mapping REST and WS parsers share."""
    text = text_column("side", values, what)
    mapped = text.replace_strict(TAKER_SIDES, default=None, return_dtype=pl.Utf8)
    if mapped.null_count():
        bad = text.filter(mapped.is_null()).unique().head(3).to_list()
        raise UnexpectedPayload(f"{what}: unknown trade sides {bad}")
    return mapped


def book_frame(
    ts: int,
    bids: tuple[pl.Series, pl.Series],
    asks: tuple[pl.Series, pl.Series],
) -> pl.DataFrame:
    """Bid and ask (price, amount) columns, best first, to the book schema."""
    frames = []
    for side, (price, amount) in (("bid", bids), ("ask", asks)):
        n = len(price)
        frames.append(
            pl.DataFrame(
                {
                    "ts": pl.Series("ts", [ts] * n, dtype=pl.Int64),
                    "side": pl.Series("side", [side] * n, dtype=pl.Utf8),
                    "level": pl.Series("level", range(n), dtype=pl.Int32),
                    "price": price.alias("price"),
                    "amount": amount.alias("amount"),
                }
            )
        )
    return pl.concat(frames)
