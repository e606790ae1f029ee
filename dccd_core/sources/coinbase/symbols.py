"""Coinbase product ids <-> unified symbols: ``BTC-USD`` <-> ``BTC/USD``.

Coinbase Exchange lists spot products only; a few currencies carry a legacy code
(``CGLD`` is Celo, unified ``CELO``, as ccxt names it).
Docs: https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproducts
"""

from __future__ import annotations

from typing import Any

from dccd_core.domain import Symbol, errors

__all__ = ["ALIASES", "native_symbol", "parse_symbols", "unified_symbol"]

#: Coinbase code -> unified code.
ALIASES: dict[str, str] = {"CGLD": "CELO"}
_NATIVE = {unified: native for native, unified in ALIASES.items()}


def native_symbol(symbol: Symbol) -> str:
    """``BTC/USD`` -> ``BTC-USD``; perpetuals do not exist on Coinbase Exchange."""
    if symbol.is_perpetual:
        raise errors.UnknownSymbol(
            f"coinbase lists spot markets only, not {symbol}; use {symbol.base}/{symbol.quote}"
        )
    base = _NATIVE.get(symbol.base, symbol.base)
    quote = _NATIVE.get(symbol.quote, symbol.quote)
    return f"{base}-{quote}"


def unified_symbol(product_id: str) -> Symbol:
    """``BTC-USD`` -> ``BTC/USD`` (aliases applied)."""
    parts = str(product_id).upper().split("-")
    if len(parts) != 2:
        raise errors.UnexpectedPayload(f"coinbase product id {product_id!r} is not BASE-QUOTE")
    base, quote = (ALIASES.get(p, p) for p in parts)
    try:
        return Symbol.parse(f"{base}/{quote}")
    except errors.ConfigError as exc:
        raise errors.UnexpectedPayload(f"coinbase product id {product_id!r}: {exc}") from exc


def parse_symbols(payload: Any) -> set[Symbol]:
    """``GET /products`` -> the tradable symbols (status ``online``, not delisted).

    Sample: ``[{"id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD",
    "status": "online", "trading_disabled": false, ...}]``
    """
    if not isinstance(payload, list):
        raise errors.UnexpectedPayload("coinbase /products: expected a list of products")
    out: set[Symbol] = set()
    for product in payload:
        if not isinstance(product, dict) or "id" not in product:
            raise errors.UnexpectedPayload(f"coinbase /products: unexpected entry {product!r}")
        if product.get("status", "online") == "delisted":
            continue
        try:
            out.add(unified_symbol(product["id"]))
        except errors.UnexpectedPayload:
            continue  # exotic ids (e.g. tokens with dots) cannot be unified symbols
    return out
