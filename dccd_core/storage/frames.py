"""Table-level rules of the store: schema checks, newer-wins merge, period split.

All of it is vectorised polars: a page of a thousand rows or a period of a million go
through the same few column operations, never a Python loop over rows.
"""

from __future__ import annotations

from functools import cache

import polars as pl
import pyarrow as pa

from dccd_core.domain import (
    NS_PER_DAY,
    DatasetKey,
    DataType,
    SchemaMismatch,
    natural_key,
    schema_for,
)

from .layout import PeriodKind, period_kind, period_of

__all__ = [
    "coerce_rows",
    "empty_frame",
    "is_unique",
    "merge_rows",
    "polars_schema",
    "sort_columns",
    "split_by_period",
    "storage_schema",
]

_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_MAX_EXACT_FLOAT_INT = 2**53
_POLARS_TYPES: dict[pa.DataType, pl.DataType] = {
    pa.int64(): pl.Int64(),
    pa.int32(): pl.Int32(),
    pa.float64(): pl.Float64(),
    pa.string(): pl.String(),
}


@cache
def polars_schema(data_type: DataType) -> pl.Schema:
    """The polars schema every read of ``data_type`` returns, even when empty."""
    # Mapped by hand: pl.from_arrow(schema.empty_table()) would import pandas (~1 s).
    return pl.Schema({f.name: _POLARS_TYPES[f.type] for f in schema_for(data_type)})


@cache
def storage_schema(data_type: DataType) -> pa.Schema:
    """The Arrow schema written to files: the domain schema with polars' string layout.

    Nullability flags are kept, so a file's footer states which columns may be null.
    """
    fields = [
        pa.field(f.name, pa.large_string() if f.type == pa.string() else f.type, f.nullable)
        for f in schema_for(data_type)
    ]
    return pa.schema(fields)


def empty_frame(data_type: DataType) -> pl.DataFrame:
    """A zero-row frame with the exact schema of ``data_type``."""
    return pl.DataFrame(schema=polars_schema(data_type))


@cache
def _required(data_type: DataType) -> tuple[str, ...]:
    return tuple(f.name for f in schema_for(data_type) if not f.nullable)


@cache
def sort_columns(data_type: DataType) -> tuple[str, ...]:
    """Files and reads are ordered by ts, then by the rest of the natural key."""
    return ("ts", *(c for c in natural_key(data_type) if c != "ts"))


def _castable(series: pl.Series, target: pl.DataType) -> bool:
    """Only casts that cannot change a value: widening ints/floats, all-null, text."""
    source = series.dtype
    if source == pl.Null:
        return True
    if target == pl.String:
        return source in (pl.Categorical, pl.Enum) or isinstance(source, pl.Categorical)
    if target == pl.Float64:
        if source == pl.Float32 or source in _INTS[:3] or source in _INTS[4:7]:
            return True
        if source in (pl.Int64, pl.UInt64):
            peak = series.abs().max() if source == pl.Int64 else series.max()
            return peak is None or int(peak) <= _MAX_EXACT_FLOAT_INT  # type: ignore[arg-type]
        return False
    if target in (pl.Int64, pl.Int32) and source in _INTS:
        lo, hi = series.min(), series.max()
        if lo is None or hi is None:
            return True
        bits = 63 if target == pl.Int64 else 31
        return bool(-(2**bits) <= int(lo) < 2**bits and int(hi) < 2**bits)  # type: ignore[arg-type]
    return False


def coerce_rows(data_type: DataType, rows: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """``rows`` as a frame with exactly the schema of ``data_type``, or ``SchemaMismatch``.

    Strict on names (missing or extra columns are refused, naming them) and on dtypes
    (only value-preserving casts such as Int32 -> Int64 or an all-null column), and
    refuses nulls in non-nullable columns and negative timestamps: anything else would
    write a file that is not one table with the rest of the lake.
    """
    if isinstance(rows, pa.Table | pa.RecordBatch):
        frame = pl.from_arrow(rows)
        if not isinstance(frame, pl.DataFrame):
            raise SchemaMismatch(f"{data_type} rows must be a table, got a single column")
    elif isinstance(rows, pl.DataFrame):
        frame = rows
    else:
        raise SchemaMismatch(
            f"{data_type} rows must be a polars DataFrame or a pyarrow Table, "
            f"got {type(rows).__name__}"
        )
    schema = polars_schema(data_type)
    given = frame.schema  # fetched once: this runs for every page of a backfill
    expected = list(schema)
    if list(given) != expected:
        missing = [c for c in expected if c not in given]
        extra = [c for c in given if c not in schema]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected columns {', '.join(extra)}")
            raise SchemaMismatch(
                f"{data_type} rows do not match the schema: {'; '.join(parts)} "
                f"(expected {', '.join(expected)})"
            )
        frame = frame.select(expected)
    wrong = []
    casts = []
    for name, dtype in schema.items():
        if given[name] == dtype:
            continue
        series = frame.get_column(name)
        if _castable(series, dtype):
            casts.append(pl.col(name).cast(dtype))
        else:
            wrong.append(f"{name} is {series.dtype}, expected {dtype}")
    if wrong:
        raise SchemaMismatch(f"{data_type} rows have wrong dtypes: {'; '.join(wrong)}")
    if casts:
        frame = frame.with_columns(casts)
    nulls = [c for c in _required(data_type) if frame.get_column(c).null_count()]
    if nulls:
        raise SchemaMismatch(
            f"{data_type} rows have nulls in non-nullable columns: {', '.join(nulls)}"
        )
    if frame.height and frame.get_column("ts").min() < 0:  # type: ignore[operator]
        raise SchemaMismatch(f"{data_type} rows have negative ts: ts is ns since 1970-01-01 UTC")
    return frame


def is_unique(frame: pl.DataFrame, key: tuple[str, ...]) -> bool:
    """Whether no two rows of ``frame`` share ``key`` (one column: no struct built)."""
    if len(key) == 1:
        return frame.get_column(key[0]).n_unique() == frame.height
    return int(frame.select(pl.struct(key).n_unique()).item()) == frame.height


def _is_strictly_increasing(ts: pl.Series) -> bool:
    if ts.len() < 2:
        return True
    return bool((ts.diff().slice(1) > 0).all())


def merge_rows(data_type: DataType, old: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame:
    """Union of ``old`` and ``new``, one row per natural key (the later row wins), sorted.

    ``new`` may itself hold several pages in arrival order; later pages win there too.
    Checks first and does the expensive dedup/sort only when needed, since most merges
    append fresh, already ordered rows.
    """
    frame = new if old is None or old.height == 0 else pl.concat([old, new], how="vertical")
    key = natural_key(data_type)
    if not is_unique(frame, key):
        frame = frame.unique(subset=list(key), keep="last")
    if not _is_strictly_increasing(frame.get_column("ts")):
        frame = frame.sort(list(sort_columns(data_type)))
    return frame


def _period_code(kind: PeriodKind) -> pl.Expr:
    ts = pl.col("ts")
    if kind is PeriodKind.DAY:
        return ts // NS_PER_DAY
    moment = pl.from_epoch(ts, time_unit="ns")
    if kind is PeriodKind.MONTH:
        return moment.dt.year().cast(pl.Int64) * 12 + moment.dt.month().cast(pl.Int64)
    return moment.dt.year().cast(pl.Int64)


def split_by_period(key: DatasetKey, frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Rows grouped by the period file they belong to (row order kept in each group)."""
    if frame.height == 0:
        return {}
    ts = frame.get_column("ts")
    first = period_of(key, int(ts.min()))  # type: ignore[arg-type]
    if first == period_of(key, int(ts.max())):  # type: ignore[arg-type]
        return {first: frame}
    coded = frame.with_columns(_period_code(period_kind(key)).alias("__period"))
    parts = coded.partition_by("__period", maintain_order=True, include_key=False)
    return {period_of(key, int(part.get_column("ts")[0])): part for part in parts}
