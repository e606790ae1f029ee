"""BitMEX liquidations: the realtime ``liquidation`` table's rows to liquidations.

Docs: https://www.bitmex.com/app/wsAPI (subscription ``liquidation:XBTUSD``) and the
``Liquidation`` model of https://www.bitmex.com/api/explorer/ ("Active Liquidations":
``orderID``, ``symbol``, ``side``, ``price``, ``leavesQty``). The table is a view of the
liquidation engine's *orders* in the book, kept like any BitMEX table::

    {"table": "liquidation", "action": "insert", "data": [{"orderID":
      "98ae1dad-6a3b-51c4-14bd-e076919e9e30", "symbol": "XBTUSD", "side": "Buy",
      "price": 13854.5, "leavesQty": 314930}]}
    {"table": "liquidation", "action": "update", "data": [{"orderID": "98ae...",
      "leavesQty": 305515, "symbol": "XBTUSD"}]}
    {"table": "liquidation", "action": "delete", "data": [{"orderID": "98ae...",
      "symbol": "XBTUSD"}]}

Which action is a liquidation, decided here:

* ``insert`` is one: the engine took the position over and put its whole size on the
  book as this order (at the bankruptcy price). dccd stores one row per insert: side =
  the order's side (``Buy`` closes a liquidated short, as Binance's ``forceOrder``),
  price = the order's price, amount = its ``leavesQty`` at insert (contracts, converted
  to base as trade sizes are), order_id = ``orderID``. This is what OKX
  (``sz``/``bkPx``) and Bybit report for a liquidation too.
* ``update`` (``leavesQty`` shrinking as the order fills) and ``delete`` (the order left
  the book: filled *or* cancelled, BitMEX does not say which) are the same
  liquidation's progress: not stored (the fills are in the ``trade`` table).
* ``partial`` (the orders resting when the connection opened) is not stored: each was
  inserted before this connection, so it was stored from its insert already, or it lies
  in the gap the stream recorded, or before the stream started; its insert time is
  unknown and its ``leavesQty`` may be partly filled.

BitMEX sends no time with a liquidation row: ``ts`` is when dccd parsed the frame (the
stream reads a stream-only type frame by frame, so within milliseconds of its arrival),
plus the row's rank in its frame in ns, so two equal orders of one frame stay two rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import DataType, errors

from .. import columns
from .parse import ContractSpec

__all__ = ["STORED_ACTION", "TABLE", "parse_liquidations"]

TABLE = "liquidation"
#: the one action whose rows are liquidations (see the module docstring)
STORED_ACTION = "insert"
_SIDES = {"Buy": "buy", "Sell": "sell"}


def parse_liquidations(
    rows: Sequence[dict[str, Any]], spec: ContractSpec, received_ns: int, what: str
) -> pl.DataFrame:
    """``insert`` rows of one symbol to the liquidations schema, stamped ``received_ns``
    (+ rank); sizes in contracts converted to base by ``spec``."""
    order_id, side, price, size = columns.object_columns(
        rows, ("orderID", "side", "price", "leavesQty"), what, item="liquidation"
    )
    px = columns.float_column("price", price, what)
    if (px <= 0).any():
        raise errors.UnexpectedPayload(f"{what}: a liquidation price <= 0 in {rows!r:.200}")
    return columns.to_schema(
        DataType.LIQUIDATIONS,
        {
            "ts": pl.Series("ts", range(received_ns, received_ns + len(rows)), pl.Int64),
            "side": columns.side_column(side, _SIDES, what),
            "price": px,
            "amount": spec.to_base(columns.float_column("amount", size, what), px, what),
            "order_id": columns.text_column("order_id", order_id, what),
        },
    )
