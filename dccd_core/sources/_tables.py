"""Column builders shared by the Coinbase and Kraken parsers: JSON lists in, polars columns out.

Exchanges send the same number as a JSON number on one endpoint and a string on the
next (Kraken OHLC, Coinbase trades), so every builder accepts both and fails loudly
(``UnexpectedPayload``) on anything else; a silent null or NaN would be stored forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import DataType, UnexpectedPayload, schema_for

__all__ = [
    "empty_frame",
    "float_column",
    "int_column",
    "iso_to_ns_column",
    "row_columns",
    "seconds_to_ns_column",
    "to_schema",
]


def _series(name: str, values: Sequence[Any], what: str) -> pl.Series:
    try:
        return pl.Series(name, values, strict=False)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise UnexpectedPayload(f"{what}: column {name!r} has values of mixed shapes") from exc


def float_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Numbers or numeric strings to Float64; null, NaN or text raise ``UnexpectedPayload``."""
    raw = _series(name, values, what)
    try:
        out = raw.cast(pl.Float64, strict=True)
    except pl.exceptions.PolarsError as exc:
        sample = raw.head(3).to_list()
        raise UnexpectedPayload(f"{what}: {name!r} is not numeric ({sample})") from exc
    if out.null_count() or out.is_nan().any():
        raise UnexpectedPayload(f"{what}: {name!r} has a missing or NaN value")
    return out


def int_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Integers or integer strings to Int64; anything else raises ``UnexpectedPayload``."""
    raw = _series(name, values, what)
    try:
        out = raw.cast(pl.Int64, strict=True)
    except pl.exceptions.PolarsError as exc:
        sample = raw.head(3).to_list()
        raise UnexpectedPayload(f"{what}: {name!r} is not an integer ({sample})") from exc
    if out.null_count():
        raise UnexpectedPayload(f"{what}: {name!r} has a missing value")
    return out


def seconds_to_ns_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Seconds (int, float or numeric string) to ns; floats are rounded to the microsecond
    first, as a float second carries no more (matches ``domain.s_to_ns``)."""
    secs = float_column(name, values, what)
    return ((secs * 1_000_000).round(0).cast(pl.Int64) * 1_000).alias(name)


def iso_to_ns_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """ISO-8601 UTC strings (``2024-03-13T11:00:17.710679Z``, fraction optional) to ns."""
    raw = _series(name, values, what)
    if raw.dtype != pl.String:
        raise UnexpectedPayload(f"{what}: {name!r} is not an ISO-8601 string")
    try:
        parsed = raw.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ns", strict=True)
    except pl.exceptions.PolarsError as exc:
        raise UnexpectedPayload(
            f"{what}: {name!r} is not ISO-8601 UTC ({raw.head(3).to_list()})"
        ) from exc
    if parsed.null_count():
        raise UnexpectedPayload(f"{what}: {name!r} has a missing time")
    return parsed.cast(pl.Int64).alias(name)


def row_columns(rows: Any, width: int, what: str) -> list[tuple[Any, ...]]:
    """Transpose a JSON list of rows into ``width`` columns, checking the row shape."""
    if not isinstance(rows, list):
        raise UnexpectedPayload(f"{what}: expected a list of rows, got {type(rows).__name__}")
    if not rows:
        return [() for _ in range(width)]
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) < width:
            raise UnexpectedPayload(f"{what}: expected rows of {width} fields, got {row!r}")
    return list(zip(*rows, strict=False))[:width]


def _polars_schema(data_type: DataType) -> pl.Schema:
    frame = pl.from_arrow(schema_for(data_type).empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.schema


_SCHEMAS = {dt: _polars_schema(dt) for dt in DataType}


def empty_frame(data_type: DataType) -> pl.DataFrame:
    """An empty frame in the schema of ``data_type``."""
    return pl.DataFrame(schema=_SCHEMAS[data_type])


def to_schema(data_type: DataType, columns: dict[str, pl.Series]) -> pl.DataFrame:
    """Assemble columns into the exact domain schema (missing nullable columns -> null)."""
    n = len(next(iter(columns.values()))) if columns else 0
    out = []
    for name, dtype in _SCHEMAS[data_type].items():
        col = columns.get(name)
        if col is None:
            out.append(pl.Series(name, [None] * n, dtype=dtype))
        else:
            out.append(col.cast(dtype).alias(name))
    return pl.DataFrame(out)
