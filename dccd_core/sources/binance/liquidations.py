"""Binance USD-M liquidations: the ``<symbol>@forceOrder`` stream's events to rows.

API: https://developers.binance.com/docs/derivatives/usds-margined-futures/
websocket-market-streams/Liquidation-Order-Streams. WebSocket only: Binance serves no
public liquidation history over REST, so a reconnect gap stays a gap (the stream
records it in coverage and counts it as unhealed). For each symbol only the latest
liquidation within 1000 ms is pushed (a snapshot stream), so even a connected stream
holds a sample, not every liquidation; dccd stores what Binance sends.

Sample event (the ``data`` of a combined-stream frame)::

    {"e":"forceOrder","E":1568014460893,
     "o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910",
          "ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}

``S`` is the liquidation order's side (SELL: a long was liquidated), ``ap`` its average
fill price, ``z`` its filled quantity, ``T`` its trade time (ms). No order id is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import DataType, errors

from .. import columns

__all__ = ["LIQUIDATION_SIDES", "parse_force_orders"]

#: Binance's order sides to dccd's
LIQUIDATION_SIDES = {"BUY": "buy", "SELL": "sell"}


def parse_force_orders(events: Sequence[dict[str, Any]], what: str) -> pl.DataFrame:
    """``forceOrder`` events to the liquidations schema, sorted by ts."""
    orders = []
    for event in events:
        order = event.get("o")
        if not isinstance(order, dict):
            raise errors.UnexpectedPayload(
                f"{what}: forceOrder without an o object: {event!r:.200}"
            )
        orders.append(order)
    ts, side, price, amount = columns.object_columns(
        orders, ("T", "S", "ap", "z"), what, item="forceOrder"
    )
    return columns.to_schema(
        DataType.LIQUIDATIONS,
        {
            "ts": columns.ms_to_ns_column("ts", ts, what),
            "side": columns.side_column(side, LIQUIDATION_SIDES, what),
            "price": columns.float_column("price", price, what),
            "amount": columns.float_column("amount", amount, what),
        },
    ).sort("ts", maintain_order=True)
