"""Pure parsers of Coinbase Exchange payloads: JSON in, frames in the domain schemas out.

REST and WebSocket trades share ``taker_side``: Coinbase reports the *maker's* side
(``"side": "sell"`` means a resting sell order was hit, i.e. the taker bought), in both
``/products/{id}/trades`` and the ``matches`` channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import DataType, errors

from .. import columns

__all__ = [
    "check_payload",
    "parse_book",
    "parse_candles",
    "parse_trades",
    "taker_side",
]

_TAKER = {"buy": "sell", "sell": "buy"}


def check_payload(data: Any) -> None:
    """Raise ``ExchangeError`` for an error reported inside a 200 body.

    Coinbase reports errors as ``{"message": "NotFound"}`` (usually with a 4xx, which
    the transport maps; this catches the same body on a 200).
    """
    if isinstance(data, dict) and "message" in data and len(data) <= 2:
        raise errors.ExchangeError(f"coinbase reported an error: {data['message']}")


def taker_side(maker_sides: Sequence[Any], what: str) -> pl.Series:
    """Coinbase maker side -> the taker's side ("sell" -> "buy"); unknown raises."""
    return columns.side_column(maker_sides, _TAKER, what)


def parse_candles(payload: Any) -> pl.DataFrame:
    """``GET /products/{id}/candles`` -> ohlc frame sorted by ts.

    Docs: https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproductcandles
    Rows are ``[time_s, low, high, open, close, volume]``, newest first; the bar
    starting at ``end`` is not returned. Sample::

        [[1704078000, 42150.12, 42402.5, 42370.01, 42210.9, 152.40731126],
         [1704074400, 42180, 42377.3, 42301.45, 42370.02, 241.5509832]]
    """
    what = "coinbase candles"
    if isinstance(payload, list) and not payload:
        return columns.empty_frame(DataType.OHLC)
    time_s, low, high, open_, close, volume = columns.rows_to_columns(payload, 6, what)
    frame = columns.ohlc_frame(
        columns.seconds_to_ns_column("ts", time_s, what),
        (open_, high, low, close),
        what,
        volume=columns.float_column("volume", volume, what),
    )
    return frame.sort("ts").unique("ts", keep="first", maintain_order=True)


def parse_trades(payload: Any) -> pl.DataFrame:
    """``GET /products/{id}/trades`` (newest first) -> trades frame sorted by (ts, id).

    Docs: https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproducttrades
    ``side`` is the maker's; ``trade_id`` is a number live (ccxt recordings stringify it).
    Sample::

        [{"trade_id": 598213377, "side": "buy", "size": "0.00150000",
          "price": "42210.90000000", "time": "2024-01-01T02:59:58.123456Z"}]
    """
    what = "coinbase trades"
    if not isinstance(payload, list):
        raise errors.UnexpectedPayload(f"{what}: expected a list, got {type(payload).__name__}")
    if not payload:
        return columns.empty_frame(DataType.TRADES)
    try:
        trade_ids, sides, sizes, prices, times = (
            [t[key] for t in payload] for key in ("trade_id", "side", "size", "price", "time")
        )
    except (KeyError, TypeError) as exc:
        raise errors.UnexpectedPayload(f"{what}: a trade lacks {exc}") from exc
    ids = columns.int_column("trade_id", trade_ids, what)
    frame = columns.to_schema(
        DataType.TRADES,
        {
            "ts": columns.iso_to_ns_column("ts", times, what),
            "trade_id": ids.cast(pl.String),
            "price": columns.float_column("price", prices, what),
            "amount": columns.float_column("amount", sizes, what),
            "side": taker_side(sides, what),
        },
    )
    return frame.with_columns(_id=ids).sort("ts", "_id").drop("_id")


def parse_book(payload: Any, depth: int, received_ts: int) -> pl.DataFrame:
    """``GET /products/{id}/book?level=2`` -> book frame, ``depth`` levels a side.

    Docs: https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproductbook
    Levels are ``[price, size, num_orders]`` strings, best first; ``time`` (when sent)
    stamps the snapshot, else ``received_ts``. Sample::

        {"bids": [["42000.01", "0.5", 3]], "asks": [["42000.02", "1.25", 1]],
         "sequence": 71023654321, "auction_mode": false, "auction": null,
         "time": "2024-01-01T00:00:00.123456Z"}
    """
    what = "coinbase book"
    if not isinstance(payload, dict) or "bids" not in payload or "asks" not in payload:
        raise errors.UnexpectedPayload(f"{what}: expected an object with bids and asks")
    ts = received_ts
    if isinstance(payload.get("time"), str):
        ts = int(columns.iso_to_ns_column("ts", [payload["time"]], what)[0])
    sides = []  # levels of size 0 are dropped
    for levels, descending in ((payload["bids"], True), (payload["asks"], False)):
        frame = columns.levels_frame(levels, what).filter(pl.col("amount") > 0)
        sides.append(frame.sort("price", descending=descending).head(depth))
    return columns.book_frame(ts, sides[0], sides[1])
