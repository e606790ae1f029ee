"""Pure BitMEX parsers: JSON lists of objects in, polars frames in the domain schemas out.

REST and WebSocket rows carry the same keys (the WS ``trade`` and ``tradeBin1m`` tables
are the REST tables pushed), so ``ws.py`` calls these functions: one side mapping and
one close-to-open shift for both paths.

Units: trade ``size`` and book ``size`` are in contracts. The stored ``amount`` is in
the base currency: ``homeNotional`` where BitMEX sends it (trades, candles), else
``size / price`` for inverse contracts (XBTUSD: one contract = 1 USD) and
``size / underlyingToPositionMultiplier`` for linear and spot ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from dccd_core.domain import Span, errors

from .. import columns

__all__ = [
    "ContractSpec",
    "check_payload",
    "parse_book",
    "parse_candles",
    "parse_instruments",
    "parse_trades",
]

#: BitMEX ``side`` is the taker's (aggressor's), capitalised on REST and WS alike.
_SIDES = {"Buy": "buy", "Sell": "sell"}


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """How to turn a contract count into base currency (from ``/instrument``)."""

    inverse: bool = False
    multiplier: float | None = None  # underlyingToPositionMultiplier: contracts per base unit

    def to_base(self, size: pl.Series, price: pl.Series, what: str) -> pl.Series:
        """Contract counts -> base-currency amounts, a column at a time (REST pages)."""
        if self.inverse:
            return (size / price).alias("amount")
        if self.multiplier:
            return (size / self.multiplier).alias("amount")
        raise self._quanto(what)

    def base_amount(self, size: float, price: float, what: str) -> float:
        """The same conversion for one level (WS book deltas); identical float results."""
        if self.inverse:
            return size / price
        if self.multiplier:
            return size / self.multiplier
        raise self._quanto(what)

    @staticmethod
    def _quanto(what: str) -> errors.NoCapability:
        return errors.NoCapability(
            f"{what}: this BitMEX contract (a quanto) has no base-currency size; "
            "collect a linear or inverse contract (e.g. BTC/USD:BTC, ETH/USDT:USDT)"
        )


def check_payload(data: Any) -> None:
    """Raise ``ExchangeError`` for a BitMEX error body.

    BitMEX reports errors (usually with HTTP 4xx) as
    ``{"error": {"message": "Invalid symbol", "name": "HTTPError"}}``.
    """
    if isinstance(data, dict) and "error" in data:
        error = data["error"]
        if isinstance(error, dict):
            raise errors.ExchangeError(
                f"bitmex error ({error.get('name', 'Error')}): {error.get('message', error)}"
            )
        raise errors.ExchangeError(f"bitmex error: {error}")


def _objects(rows: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise errors.UnexpectedPayload(
            f"{what}: expected a JSON list of objects, got {str(rows)[:80]}"
        )
    return rows


def _field(rows: Sequence[dict[str, Any]], key: str, what: str) -> list[Any]:
    try:
        return [r[key] for r in rows]
    except KeyError:
        raise errors.UnexpectedPayload(f"{what}: a row has no {key!r} field") from None


def parse_trades(rows: Any, spec: ContractSpec | None = None) -> pl.DataFrame:
    """``/api/v1/trade`` rows (or the WS ``trade`` table) -> trades frame.

    Docs: https://www.bitmex.com/api/explorer/#!/Trade/Trade_get . ``trdMatchID`` is the
    trade id, ``side`` the taker's side, ``size`` contracts, ``homeNotional`` the base
    amount (the stored ``amount``; ``spec`` converts ``size`` where it is missing)::

        [{"timestamp": "2024-01-01T00:00:07.415Z", "symbol": "XBTUSD", "side": "Sell",
          "size": 2300, "price": 42290.5, "tickDirection": "ZeroPlusTick",
          "trdMatchID": "00000000-006d-1000-0000-0003a1b2c3d4", "grossValue": 5438574,
          "homeNotional": 0.05438574, "foreignNotional": 2300, "trdType": "Regular"}]
    """
    what = "bitmex trades"
    objs = _objects(rows, what)
    price = columns.float_column("price", _field(objs, "price", what), what)
    home = [r.get("homeNotional") for r in objs]
    if any(v is None for v in home):
        amount_series = columns.float_column("amount", home, what, optional=True)
        size = columns.float_column("size", _field(objs, "size", what), what)
        converted = (spec or ContractSpec()).to_base(size, price, what)
        amount_series = amount_series.fill_null(converted)
    else:
        amount_series = columns.float_column("amount", home, what)
    return pl.DataFrame(
        [
            columns.iso_to_ns_column("ts", _field(objs, "timestamp", what), what),
            columns.text_column("trade_id", _field(objs, "trdMatchID", what), what),
            price,
            amount_series.alias("amount"),
            columns.side_column(_field(objs, "side", what), _SIDES, what),
        ]
    )


def parse_candles(rows: Any, span: Span) -> pl.DataFrame:
    """``/api/v1/trade/bucketed`` rows (or WS ``tradeBin1m``) -> ohlc frame by OPEN time.

    Docs: https://www.bitmex.com/api/explorer/#!/Trade/Trade_getBucketed . BitMEX stamps
    a bucket with its END: the row labelled 00:00 is the 23:00-00:00 bar, so
    ``ts = timestamp - span``. Its ``open`` is the previous bucket's close and may lie
    outside ``[low, high]``; it is stored as sent. ``volume`` is contracts, so the stored
    volume is ``homeNotional`` (base currency) and ``quote_volume`` ``foreignNotional``::

        [{"timestamp": "2024-01-01T01:00:00.000Z", "symbol": "XBTUSD", "open": 42310.0,
          "high": 42415.5, "low": 42190.0, "close": 42362.5, "trades": 2871,
          "volume": 9843100, "vwap": 42301.7741, "lastSize": 200,
          "turnover": 23268764040, "homeNotional": 232.6876404,
          "foreignNotional": 9843100}]
    """
    what = "bitmex candles"
    objs = _objects(rows, what)
    # A bucket without trades (e.g. before listing) may carry null prices: not a bar.
    objs = [r for r in objs if r.get("close") is not None or r.get("trades") not in (0, "0")]
    stamp = columns.iso_to_ns_column("ts", _field(objs, "timestamp", what), what)
    frame = columns.ohlc_frame(
        stamp - span.ns,
        [_field(objs, key, what) for key in ("open", "high", "low", "close")],
        what,
        volume=columns.float_column("volume", [r.get("homeNotional", 0) for r in objs], what),
        quote_volume=columns.float_column(
            "quote_volume", [r.get("foreignNotional") for r in objs], what, optional=True
        ),
        trades=columns.int_column("trades", [r.get("trades") for r in objs], what, optional=True),
    )
    return frame.sort("ts").unique("ts", keep="last", maintain_order=True)


def parse_book(rows: Any, ts: int, spec: ContractSpec) -> pl.DataFrame:
    """``/api/v1/orderBook/L2`` rows -> book frame stamped ``ts`` (ns).

    Docs: https://www.bitmex.com/api/explorer/#!/OrderBook/OrderBook_getL2 . Sells come
    first, highest price first, then buys, highest first; ``size`` is contracts::

        [{"symbol": "XBTUSD", "id": 8799573000, "side": "Sell", "size": 1200,
          "price": 42700.0, "timestamp": "2024-01-01T00:00:00.123Z"},
         {"symbol": "XBTUSD", "id": 8799573050, "side": "Buy", "size": 5000,
          "price": 42695.0, "timestamp": "2024-01-01T00:00:00.101Z"}]
    """
    what = "bitmex book"
    objs = _objects(rows, what)
    price = columns.float_column("price", _field(objs, "price", what), what)
    size = columns.float_column("size", _field(objs, "size", what), what)
    sides = _field(objs, "side", what)
    if any(s not in _SIDES for s in sides):
        raise errors.UnexpectedPayload(
            f"{what}: unknown side in {sorted(set(map(str, sides)))[:3]}"
        )
    frame = pl.DataFrame(
        [
            pl.Series("side", ["bid" if s == "Buy" else "ask" for s in sides], dtype=pl.String),
            price,
            spec.to_base(size, price, what),
        ]
    )
    bids = frame.filter(pl.col("side") == "bid").sort("price", descending=True)
    asks = frame.filter(pl.col("side") == "ask").sort("price")
    return columns.book_frame(ts, bids, asks)


def parse_instruments(rows: Any) -> dict[str, tuple[str, ContractSpec]]:
    """``/api/v1/instrument/active`` -> {symbol: (typ, ContractSpec)}.

    Docs: https://www.bitmex.com/api/explorer/#!/Instrument/Instrument_getActive ::

        [{"symbol": "XBTUSD", "typ": "FFWCSX", "isInverse": true, "isQuanto": false,
          "underlyingToPositionMultiplier": null, "settlCurrency": "XBt", ...}]
    """
    what = "bitmex instruments"
    out: dict[str, tuple[str, ContractSpec]] = {}
    for row in _objects(rows, what):
        name, typ = row.get("symbol"), row.get("typ")
        if not isinstance(name, str) or not isinstance(typ, str):
            raise errors.UnexpectedPayload(
                f"{what}: an instrument without symbol/typ: {str(row)[:80]}"
            )
        mult = row.get("underlyingToPositionMultiplier")
        spec = ContractSpec(
            inverse=bool(row.get("isInverse")),
            multiplier=None if row.get("isQuanto") or mult in (None, 0) else float(mult),
        )
        out[name] = (typ, spec)
    return out
