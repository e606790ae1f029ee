"""OKX v5 symbol map: unified ``Symbol`` <-> instrument id, both ways, and contract sizes.

``BTC/USDT`` is ``BTC-USDT`` (SPOT), ``BTC/USDT:USDT`` is ``BTC-USDT-SWAP`` (linear
perpetual, settled in USDT), ``BTC/USD:BTC`` is ``BTC-USD-SWAP`` (inverse, settled in
BTC). Swap sizes are counted in contracts of ``ctVal`` units of ``ctValCcy`` (linear
BTC-USDT-SWAP: 0.01 BTC; inverse BTC-USD-SWAP: 100 USD), so the source converts them
to base amounts with :class:`Contract`. Docs:
https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dccd_core.domain import Symbol, errors

__all__ = [
    "Contract",
    "inst_type_of",
    "native_symbol",
    "parse_contract",
    "parse_symbols",
    "unified_symbol",
]


@dataclass(frozen=True, slots=True)
class Contract:
    """How one swap counts size: ``ct_val`` units per contract; inverse in quote units."""

    ct_val: float
    inverse: bool

    def base_amount(self, contracts: Any, price: Any) -> Any:
        """Contracts to base amount (works on floats and polars expressions/series)."""
        if self.inverse:
            return contracts * self.ct_val / price
        return contracts * self.ct_val


def inst_type_of(symbol: Symbol) -> str:
    """``SPOT`` without a settle currency, else ``SWAP`` (settled in the quote or base)."""
    if symbol.settle is None:
        return "SPOT"
    if symbol.settle in (symbol.quote, symbol.base):
        return "SWAP"
    raise errors.UnknownSymbol(
        f"okx has no market {symbol}: swaps settle in the quote (BTC/USDT:USDT) "
        "or in the base (BTC/USD:BTC)"
    )


def native_symbol(symbol: Symbol) -> str:
    """``BTC-USDT`` for spot, ``BTC-USDT-SWAP`` / ``BTC-USD-SWAP`` for perpetuals."""
    if inst_type_of(symbol) == "SPOT":
        return f"{symbol.base}-{symbol.quote}"
    return f"{symbol.base}-{symbol.quote}-SWAP"


def unified_symbol(inst_id: str) -> Symbol:
    """The inverse of :func:`native_symbol`; a swap settles in USD's base (inverse) or quote."""
    parts = inst_id.upper().split("-")
    if len(parts) == 2:
        return Symbol(parts[0], parts[1])
    if len(parts) == 3 and parts[2] == "SWAP":
        base, quote = parts[0], parts[1]
        return Symbol(base, quote, base if quote == "USD" else quote)
    raise errors.UnknownSymbol(f"okx instrument {inst_id!r} is neither spot nor a perpetual swap")


def _instrument_rows(payload: Any, what: str) -> list[dict[str, Any]]:
    rows = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise errors.UnexpectedPayload(f"okx {what}: expected a data list, got {payload!r:.200}")
    return [row for row in rows if isinstance(row, dict)]


def parse_symbols(payload: Any) -> set[Symbol]:
    """Live spot pairs and perpetual swaps of one ``/api/v5/public/instruments`` body.

    Sample (abridged)::

        {"code": "0", "msg": "", "data": [{"instType": "SWAP", "instId": "BTC-USDT-SWAP",
          "baseCcy": "", "quoteCcy": "", "settleCcy": "USDT", "ctVal": "0.01",
          "ctValCcy": "BTC", "ctType": "linear", "state": "live"}]}
    """
    symbols: set[Symbol] = set()
    for row in _instrument_rows(payload, "instruments"):
        if row.get("state", "live") != "live":
            continue
        inst_id = str(row.get("instId", ""))
        try:
            symbols.add(unified_symbol(inst_id))
        except errors.UnknownSymbol:
            continue
    return symbols


def parse_contract(payload: Any, inst_id: str) -> Contract:
    """The contract size of ``inst_id`` from an instruments body (``ctVal``, ``ctType``)."""
    for row in _instrument_rows(payload, "instruments"):
        if row.get("instId") == inst_id:
            try:
                ct_val = float(row["ctVal"])
            except (KeyError, TypeError, ValueError):
                raise errors.UnexpectedPayload(f"okx instruments: {inst_id} has no ctVal") from None
            if ct_val <= 0:
                raise errors.UnexpectedPayload(f"okx instruments: {inst_id} ctVal {ct_val} <= 0")
            return Contract(ct_val, row.get("ctType") == "inverse")
    raise errors.UnknownSymbol(f"okx does not list {inst_id}; check the instrument id")
