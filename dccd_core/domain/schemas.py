"""One fixed Arrow schema per data type, and its natural key.

The store validates every write against these before touching a file: a dataset
that silently changes dtype is unreadable as one table.
"""

from __future__ import annotations

import pyarrow as pa

from .types import DataType

__all__ = ["NATURAL_KEYS", "SCHEMAS", "natural_key", "schema_for"]

SCHEMAS: dict[DataType, pa.Schema] = {
    DataType.OHLC: pa.schema(
        [
            pa.field("ts", pa.int64(), nullable=False),
            pa.field("open", pa.float64(), nullable=False),
            pa.field("high", pa.float64(), nullable=False),
            pa.field("low", pa.float64(), nullable=False),
            pa.field("close", pa.float64(), nullable=False),
            pa.field("volume", pa.float64(), nullable=False),
            pa.field("quote_volume", pa.float64(), nullable=True),
            pa.field("trades", pa.int64(), nullable=True),
        ]
    ),
    DataType.TRADES: pa.schema(
        [
            pa.field("ts", pa.int64(), nullable=False),
            pa.field("trade_id", pa.string(), nullable=False),
            pa.field("price", pa.float64(), nullable=False),
            pa.field("amount", pa.float64(), nullable=False),
            pa.field("side", pa.string(), nullable=False),
        ]
    ),
    DataType.BOOK: pa.schema(
        [
            pa.field("ts", pa.int64(), nullable=False),
            pa.field("side", pa.string(), nullable=False),
            pa.field("level", pa.int32(), nullable=False),
            pa.field("price", pa.float64(), nullable=False),
            pa.field("amount", pa.float64(), nullable=False),
        ]
    ),
}

NATURAL_KEYS: dict[DataType, tuple[str, ...]] = {
    DataType.OHLC: ("ts",),
    DataType.TRADES: ("trade_id",),
    DataType.BOOK: ("ts", "side", "level"),
}


def schema_for(data_type: DataType) -> pa.Schema:
    """The Arrow schema of ``data_type``."""
    return SCHEMAS[data_type]


def natural_key(data_type: DataType) -> tuple[str, ...]:
    """The columns that identify a row: a newer row with the same key replaces it."""
    return NATURAL_KEYS[data_type]
