"""ccxt's unified structures to dccd's polars frames, one vectorised step per page.

ccxt has already parsed the exchange's wire format into its unified shapes
(https://docs.ccxt.com/#/README?id=unified-api); these functions only type and check
them. ccxt's lists are read column-wise by polars (no per-row dict building), every
value is cast (numbers sent as strings and vice versa pass), and a null or unreadable
required value raises ``UnexpectedPayload``.

Sample ccxt OHLCV page (``fetch_ohlcv``)::

    [[1704070800000, 43300.1, 43350.0, 43280.5, 43320.0, 512.3], ...]

Sample ccxt trade (``fetch_trades``; extra keys such as ``info`` are ignored)::

    {"id": "3383311", "timestamp": 1704067200012, "side": "buy",
     "price": 42117.53, "amount": 0.0104, "info": {...}, ...}

Sample ccxt order book (``fetch_order_book``)::

    {"bids": [[42283.5, 1.2], ...], "asks": [[42283.6, 0.4], ...], "timestamp": None}
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import NS_PER_MS, DataType, UnexpectedPayload

from .columns import empty_frame

__all__ = ["book_frame", "ohlcv_frame", "trades_frame"]

_OHLCV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
_TRADE_SCHEMA = {
    "timestamp": pl.Int64,
    "id": pl.Utf8,
    "price": pl.Float64,
    "amount": pl.Float64,
    "side": pl.Utf8,
}
_SIDES = ("buy", "sell")


def _cast_frame(data: Any, columns: tuple[str, ...], what: str) -> pl.DataFrame:
    """Rows of numbers (or numeric strings) to Float64 columns named ``columns``."""
    if not isinstance(data, list):
        raise UnexpectedPayload(f"{what}: expected a list, got {type(data).__name__}")
    width = len(columns)
    for row in data:
        if not isinstance(row, list | tuple) or len(row) < width:
            raise UnexpectedPayload(f"{what}: expected rows of {width} values, got {row!r}")
    raw = pl.DataFrame(
        [list(row[:width]) for row in data] if data else None,
        schema=dict.fromkeys(columns, pl.Utf8),
        orient="row",
        strict=False,
    )
    cast = raw.select(pl.all().cast(pl.Float64, strict=False))
    bad = [name for name in columns if cast[name].null_count()]
    if bad:
        sample = raw.filter(pl.any_horizontal(cast[bad].select(pl.all().is_null()))).head(2)
        raise UnexpectedPayload(f"{what}: missing or non-numeric {bad} in rows {sample.rows()}")
    return cast


def ohlcv_frame(data: Any, what: str = "ccxt fetch_ohlcv") -> pl.DataFrame:
    """``[[ms, o, h, l, c, v], ...]`` to the ohlc schema (quote_volume, trades null),
    sorted by ts, duplicate bars dropped (the last one sent wins)."""
    frame = _cast_frame(data, _OHLCV_COLUMNS, what)
    if frame.height == 0:
        return empty_frame(DataType.OHLC)
    ms = frame["ts"]
    if (ms != ms.floor()).any():
        raise UnexpectedPayload(f"{what}: fractional millisecond timestamps {ms.head(3).to_list()}")
    return (
        frame.with_columns(
            (pl.col("ts").cast(pl.Int64) * NS_PER_MS).alias("ts"),
            pl.lit(None, pl.Float64).alias("quote_volume"),
            pl.lit(None, pl.Int64).alias("trades"),
        )
        .unique("ts", keep="last", maintain_order=True)
        .sort("ts")
    )


def trades_frame(
    data: Any, what: str = "ccxt fetch_trades", *, numeric_ids: bool = False
) -> pl.DataFrame:
    """ccxt trade dicts to the trades schema, sorted by ts (stable).

    ccxt orders equal timestamps by the id *string* ("10" before "9"); with
    ``numeric_ids`` (consecutive integer ids, e.g. Binance aggTrades) rows are ordered
    by (ts, integer id) so that ids ascend. A trade without an id gets a deterministic
    one from (ts, price, amount, side, rank among equal rows), so a re-fetch of the
    same trade yields the same key.
    """
    if not isinstance(data, list):
        raise UnexpectedPayload(f"{what}: expected a list of trades, got {type(data).__name__}")
    if not data:
        return empty_frame(DataType.TRADES)
    if not all(isinstance(item, dict) for item in data):
        raise UnexpectedPayload(f"{what}: expected trade objects, got {data[0]!r}")
    raw = pl.from_dicts(data, schema=_TRADE_SCHEMA, strict=False)
    for name in ("timestamp", "price", "amount", "side"):
        if raw[name].null_count():
            row = data[raw[name].is_null().arg_true()[0]]
            raise UnexpectedPayload(f"{what}: missing or unreadable {name!r} in {row!r}")
    side = raw["side"].str.to_lowercase()
    if not side.is_in(_SIDES).all():
        odd = side.filter(~side.is_in(_SIDES)).unique().head(3).to_list()
        raise UnexpectedPayload(f"{what}: unknown trade side(s) {odd}, expected buy/sell")
    frame = raw.with_columns((pl.col("timestamp") * NS_PER_MS).alias("ts"), side.alias("side"))
    derived = pl.concat_str(
        [
            pl.col("ts").cast(pl.Utf8),
            pl.col("price").cast(pl.Utf8),
            pl.col("amount").cast(pl.Utf8),
            pl.col("side"),
            pl.int_range(pl.len()).over("ts", "price", "amount", "side").cast(pl.Utf8),
        ],
        separator="-",
    )
    frame = frame.select(
        "ts",
        pl.coalesce(pl.col("id"), derived).alias("trade_id"),
        "price",
        "amount",
        "side",
    )
    if numeric_ids:
        order = frame["trade_id"].cast(pl.Int64, strict=False)
        if order.null_count():
            raise UnexpectedPayload(
                f"{what}: non-integer trade ids {frame['trade_id'].head(3).to_list()}"
            )
        return frame.with_columns(order.alias("_id")).sort("ts", "_id").drop("_id")
    return frame.sort("ts", maintain_order=True)


def book_frame(data: Any, depth: int, ts: int, what: str = "ccxt fetch_order_book") -> pl.DataFrame:
    """A ccxt order book to the book schema: ``depth`` levels a side, level 0 = best.

    ``ts`` (ns) stamps the snapshot: the book's own ``timestamp`` when ccxt has one,
    else the caller's receive time.
    """
    if not isinstance(data, dict):
        raise UnexpectedPayload(f"{what}: expected a book object, got {type(data).__name__}")
    stamp = data.get("timestamp")
    if stamp is not None:
        try:
            ts = int(stamp) * NS_PER_MS
        except (TypeError, ValueError):
            raise UnexpectedPayload(f"{what}: unreadable timestamp {stamp!r}") from None
    parts = []
    for key, side in (("bids", "bid"), ("asks", "ask")):
        levels = data.get(key)
        if not isinstance(levels, list):
            raise UnexpectedPayload(f"{what}: missing {key!r} list in the book")
        frame = _cast_frame(levels[:depth], ("price", "amount"), f"{what} {key}")
        parts.append(
            frame.with_columns(
                pl.lit(ts, pl.Int64).alias("ts"),
                pl.lit(side, pl.Utf8).alias("side"),
                pl.int_range(pl.len(), dtype=pl.Int32).alias("level"),
            )
        )
    return pl.concat(parts).select("ts", "side", "level", "price", "amount")
