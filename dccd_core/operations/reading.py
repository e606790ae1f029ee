"""The read verbs: one line from a notebook to a dataset or to the lake's inventory.

    >>> import dccd_core
    >>> dccd_core.read("binance", "BTC/USDT", "ohlc", span="1m", start="2024-01-01")

Thin on purpose: names are validated by the domain types and the rest is the store's.
"""

from __future__ import annotations

import os

import polars as pl

from dccd_core.domain import DatasetKey, DataType, Span, Symbol, TimeLike
from dccd_core.storage import DatasetInfo, Store

__all__ = ["inventory", "read"]


def read(
    exchange: str,
    symbol: str | Symbol,
    data_type: str | DataType,
    *,
    span: str | int | Span | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    root: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """Rows of one dataset with ``start <= ts < end``, sorted by ts.

    ``start``/``end`` take ns ints, datetimes, dates or ISO strings (naive = UTC);
    ``root`` defaults to ``DCCD_DATA_PATH``, else ``./data``. An empty range or an
    absent dataset gives an empty frame with the dataset's exact schema. Raises
    ``ConfigError`` for a bad name or ``end`` before ``start``, ``CorruptFile`` for a
    damaged period file.
    """
    key = DatasetKey.of(exchange, symbol, data_type, span)
    return Store(root).read(key, start, end)


def inventory(root: str | os.PathLike[str] | None = None) -> list[DatasetInfo]:
    """Every dataset of the lake: rows, first/last ts, files, bytes (from footers)."""
    return Store(root).inventory()
