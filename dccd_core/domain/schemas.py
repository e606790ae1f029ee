"""One fixed Arrow schema per data type, and its natural key.

The store validates every write against these before touching a file: a dataset
that silently changes dtype is unreadable as one table.
"""

from __future__ import annotations

import pyarrow as pa

from .types import DataType

__all__ = ["NATURAL_KEYS", "SCHEMAS", "natural_key", "schema_for"]


def _schema(spec: str) -> pa.Schema:
    """``"ts:int64 quote_volume:float64?"``: columns in order as ``name:arrow_type``,
    ``?`` where the column may be null."""
    fields = []
    for column in spec.split():
        name, _, type_name = column.partition(":")
        nullable = type_name.endswith("?")
        fields.append(pa.field(name, pa.type_for_alias(type_name.rstrip("?")), nullable=nullable))
    return pa.schema(fields)


_PRICE_CANDLES = _schema(
    "ts:int64 open:float64 high:float64 low:float64 close:float64 volume:float64? "
    "quote_volume:float64? trades:int64?"
)

SCHEMAS: dict[DataType, pa.Schema] = {
    DataType.OHLC: _schema(
        "ts:int64 open:float64 high:float64 low:float64 close:float64 volume:float64 "
        "quote_volume:float64? trades:int64?"
    ),
    DataType.TRADES: _schema("ts:int64 trade_id:string price:float64 amount:float64 side:string"),
    DataType.BOOK: _schema("ts:int64 side:string level:int32 price:float64 amount:float64"),
    # ts = the funding time; rate per funding interval (0.0001 = 0.01 %); the mark price
    # and the interval (hours) only where the exchange's history sends them
    DataType.FUNDING: _schema("ts:int64 rate:float64 mark_price:float64? interval_h:int32?"),
    # the ohlc columns; a mark or index price has no volume, so those are always null
    DataType.MARK: _PRICE_CANDLES,
    DataType.INDEX: _PRICE_CANDLES,
    # open interest in contracts or base (as the exchange counts it), its quote value
    # where the exchange sends one
    DataType.OPEN_INTEREST: _schema("ts:int64 open_interest:float64 open_interest_value:float64?"),
    # one forced liquidation order: side is the liquidation order's side (sell: a long
    # was liquidated), price its average fill price, amount its filled quantity in base
    # or contracts; an order id only where the exchange sends one
    DataType.LIQUIDATIONS: _schema(
        "ts:int64 side:string price:float64 amount:float64 order_id:string?"
    ),
}

NATURAL_KEYS: dict[DataType, tuple[str, ...]] = {
    DataType.OHLC: ("ts",),
    DataType.TRADES: ("trade_id",),
    DataType.BOOK: ("ts", "side", "level"),
    DataType.FUNDING: ("ts",),
    DataType.MARK: ("ts",),
    DataType.INDEX: ("ts",),
    DataType.OPEN_INTEREST: ("ts",),
    # Exchanges send no trade id for a liquidation (Binance forceOrder has none, order_id
    # is null there), so a row is the whole event: the same order at the same ms, side,
    # price and amount is the same liquidation (a replay after a reconnect), two partial
    # fills of one order differ in ts or amount. Not order_id: it is null where absent.
    DataType.LIQUIDATIONS: ("ts", "side", "price", "amount"),
}


def schema_for(data_type: DataType) -> pa.Schema:
    """The Arrow schema of ``data_type``."""
    return SCHEMAS[data_type]


def natural_key(data_type: DataType) -> tuple[str, ...]:
    """The columns that identify a row: a newer row with the same key replaces it."""
    return NATURAL_KEYS[data_type]
