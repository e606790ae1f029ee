"""OKX liquidations: the ``liquidation-orders`` channel's pushes to rows.

API: https://www.okx.com/docs-v5/en/#public-data-websocket-liquidation-orders-channel.
WebSocket only (``/ws/v5/public``): the channel is subscribed per instrument *type*
(``{"channel": "liquidation-orders", "instType": "SWAP"}``), not per instrument, so one
subscription carries the liquidations of every swap; the stream keeps the subscribed
instruments' rows and drops the others. Like every liquidations stream in dccd it is
never healed from REST (dccd declares no REST liquidations anywhere): a reconnect gap is
recorded as a gap.

Sample push (ccxt's recorded one, abridged)::

    {"arg": {"channel": "liquidation-orders", "instType": "SWAP"},
     "data": [{"details": [{"bkLoss": "0", "bkPx": "0.007831", "ccy": "",
                            "posSide": "short", "side": "buy", "sz": "13",
                            "ts": "1692266434010"}],
               "instFamily": "IOST-USDT", "instId": "IOST-USDT-SWAP",
               "instType": "SWAP", "uly": "IOST-USDT"}]}

``side`` is the liquidation order's side (``buy`` closes a liquidated short, the side
dccd stores, as Binance's ``forceOrder`` sends it); ``posSide`` the liquidated position.
``bkPx`` is the bankruptcy price, the price OKX reports (no fill price is sent); ``sz``
is in contracts, converted to base with the swap's ``ctVal`` (``Contract``). No order id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from dccd_core.domain import DataType, errors

from .. import columns
from .symbols import Contract

__all__ = ["CHANNEL", "parse_liquidation_orders"]

CHANNEL = "liquidation-orders"
#: OKX's order sides to dccd's (the same words)
_SIDES = {"buy": "buy", "sell": "sell"}


def parse_liquidation_orders(
    items: Sequence[Any], contracts: Mapping[str, Contract | None], what: str = "okx " + CHANNEL
) -> dict[str, pl.DataFrame]:
    """The pushes' ``data`` items to liquidations frames by ``instId``, sorted by ts;
    instruments not in ``contracts`` (not subscribed) are left out."""
    details: dict[str, list[Any]] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("details"), list):
            raise errors.UnexpectedPayload(f"{what}: an item without details: {item!r:.200}")
        inst_id = item.get("instId")
        if inst_id in contracts:
            details.setdefault(str(inst_id), []).extend(item["details"])
    frames: dict[str, pl.DataFrame] = {}
    for inst_id, rows in details.items():
        ts, side, price, size = columns.object_columns(
            rows, ("ts", "side", "bkPx", "sz"), what, item="liquidation"
        )
        px = columns.float_column("price", price, what)
        contracts_sz = columns.float_column("amount", size, what)
        contract = contracts[inst_id]
        amount = contract.base_amount(contracts_sz, px) if contract is not None else contracts_sz
        frames[inst_id] = columns.to_schema(
            DataType.LIQUIDATIONS,
            {
                "ts": columns.ms_to_ns_column("ts", ts, what),
                "side": columns.side_column(side, _SIDES, what),
                "price": px,
                "amount": amount.alias("amount"),
            },
        ).sort("ts", maintain_order=True)
    return frames
