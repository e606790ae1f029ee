"""The read verbs: one line from a notebook to a dataset or to the lake's inventory.

    >>> import dccd_core
    >>> dccd_core.read("binance", "BTC/USDT", "ohlc", span="1m", start="2024-01-01")

Thin on purpose: names are validated by the domain types and the rest is the store's.
"""

from __future__ import annotations

import difflib
import os

import polars as pl

from dccd_core.domain import DatasetKey, DataType, Span, Symbol, TimeLike, UnknownDataset
from dccd_core.storage import DatasetInfo, Store

__all__ = ["inventory", "read", "require_dataset"]


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
    ``root`` defaults to ``DCCD_DATA_PATH``, else ``./data``. A range with no rows
    gives an empty frame with the dataset's exact schema. Raises ``ConfigError`` for a
    bad name or ``end`` before ``start`` (``UnknownExchange`` with suggestions for an
    exchange no source serves, ``UnknownDataset`` for a dataset the lake at ``root``
    does not hold), ``CorruptFile`` for a damaged period file.
    """
    key = DatasetKey.of(exchange, symbol, data_type, span)
    store = Store(root)
    require_dataset(store, key)
    return store.read(key, start, end)


def require_dataset(store: Store, key: DatasetKey) -> None:
    """Raise unless ``store`` holds ``key``: ``UnknownExchange`` (with close matches)
    for an exchange no source serves, else ``UnknownDataset`` naming the lake root and
    the closest datasets it does hold. A dataset fetched but empty is held."""
    if store.has(key):
        return
    from dccd_core.sources.registry import check_exchange

    check_exchange(key.exchange)
    held = {str(k): k for k in store.datasets() if k.data_type is key.data_type}
    close = difflib.get_close_matches(str(key), list(held), n=3, cutoff=0.75)
    hint = f" (it holds {', '.join(close)})" if close else ""
    raise UnknownDataset(
        f"{key} is not in the lake at {store.root}{hint}: fetch it first (a backfill or "
        "dagster asset materialize), or point --root / DCCD_DATA_PATH at the lake that "
        "holds it; `dccd inventory` lists what a lake holds"
    )


def inventory(root: str | os.PathLike[str] | None = None) -> list[DatasetInfo]:
    """Every dataset of the lake: rows, first/last ts, files, bytes (from footers)."""
    return Store(root).inventory()
