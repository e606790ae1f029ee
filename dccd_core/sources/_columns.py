"""Vectorised column builders shared by the native parsers (Bitfinex, BitMEX).

Exchanges send numbers as JSON numbers on one endpoint and as strings on the next
(ccxt's recordings even stringify BitMEX numerics), so every numeric column is built
with polars' lenient constructor, which parses ``"42315.5"`` and ``42315.5`` alike, and
then checked: a value that was present but did not parse is an ``UnexpectedPayload``,
never a silent null in the lake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import NS_PER_MS, UnexpectedPayload

__all__ = [
    "float_column",
    "int_column",
    "iso_ms_column_to_ns",
    "ms_column_to_ns",
    "rows_to_columns",
]


def rows_to_columns(rows: Sequence[Any], width: int, what: str) -> list[tuple[Any, ...]]:
    """Transpose JSON array rows into columns, refusing rows of the wrong shape.

    ``width`` is the number of leading fields the parser reads; longer rows are fine
    (exchanges append fields), shorter or non-list rows are not.
    """
    if not isinstance(rows, list):
        raise UnexpectedPayload(f"{what}: expected a JSON list of rows, got {type(rows).__name__}")
    if not rows:
        return [() for _ in range(width)]
    try:
        short = [r for r in rows if not isinstance(r, list) or len(r) < width]
    except TypeError:  # pragma: no cover - defensive
        short = rows
    if short:
        raise UnexpectedPayload(
            f"{what}: expected rows of at least {width} fields, got {short[0]!r}"
        )
    return list(zip(*(r[:width] for r in rows), strict=True))


def _check_nulls(series: pl.Series, values: Sequence[Any], what: str, optional: bool) -> None:
    missing = series.null_count()
    if not missing:
        return
    if optional:
        nones = sum(1 for v in values if v is None)
        if missing == nones:
            return
    bad = next(
        (v for v, ok in zip(values, series.is_not_null().to_list(), strict=True) if not ok),
        None,
    )
    raise UnexpectedPayload(f"{what}: {series.name} value {bad!r} is not a number")


def float_column(
    name: str, values: Sequence[Any], what: str, *, optional: bool = False
) -> pl.Series:
    """A Float64 column from numbers or numeric strings; ``optional`` allows JSON null."""
    series = pl.Series(name, list(values), dtype=pl.Float64, strict=False)
    _check_nulls(series, values, what, optional)
    if series.is_nan().any() or series.is_infinite().any():
        raise UnexpectedPayload(f"{what}: {name} holds NaN or infinity")
    return series


def int_column(name: str, values: Sequence[Any], what: str, *, optional: bool = False) -> pl.Series:
    """An Int64 column from integers or integer strings; ``optional`` allows JSON null."""
    if any(isinstance(v, float) and not v.is_integer() for v in values):
        raise UnexpectedPayload(f"{what}: {name} holds a fractional value where an integer is due")
    series = pl.Series(name, list(values), dtype=pl.Int64, strict=False)
    _check_nulls(series, values, what, optional)
    return series


def ms_column_to_ns(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Epoch milliseconds (numbers or strings) to an Int64 ns column named ``name``."""
    return (int_column(name, values, what) * NS_PER_MS).alias(name)


def iso_ms_column_to_ns(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """ISO-8601 UTC strings (``2024-01-01T00:00:01.235Z``) to an Int64 ns column."""
    if any(not isinstance(v, str) for v in values):
        bad = next(v for v in values if not isinstance(v, str))
        raise UnexpectedPayload(f"{what}: {name} value {bad!r} is not an ISO-8601 time")
    text = pl.Series(name, list(values), dtype=pl.String)
    try:
        parsed = text.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ns", time_zone=None, strict=True
        )
    except Exception as exc:  # polars raises its own ComputeError/InvalidOperationError
        raise UnexpectedPayload(
            f"{what}: {name} holds a time that is not ISO-8601 UTC (e.g. "
            f"2024-01-01T00:00:01.235Z): {str(exc).splitlines()[0]}"
        ) from None
    return parsed.cast(pl.Int64).alias(name)
