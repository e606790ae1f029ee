"""Bybit v5 symbol map: unified ``Symbol`` <-> (category, native name), both ways.

Bybit names a market by ``category`` + ``symbol``: ``BTC/USDT`` is ``spot``/``BTCUSDT``,
``BTC/USDT:USDT`` is ``linear``/``BTCUSDT`` (same native name, other category),
``BTC/USD:BTC`` is ``inverse``/``BTCUSD``. USDC-settled perpetuals keep their old alias
``BTCPERP`` (``BTC/USDC:USDC``). Docs:
https://bybit-exchange.github.io/docs/v5/market/instrument
"""

from __future__ import annotations

from typing import Any

from dccd_core.domain import Symbol, errors

__all__ = [
    "CATEGORIES",
    "category_of",
    "is_inverse",
    "native_symbol",
    "parse_symbols",
    "unified_symbol",
]

CATEGORIES: tuple[str, ...] = ("spot", "linear", "inverse")

#: Quote currencies tried, longest first, to split a native name with no separator.
_QUOTES: tuple[str, ...] = ("USDT", "USDC", "USDE", "EUR", "BRL", "DAI", "BTC", "ETH", "USD")
_PERPETUALS = ("LinearPerpetual", "InversePerpetual")


def category_of(symbol: Symbol) -> str:
    """``spot`` (no settle), ``linear`` (settled in the quote), ``inverse`` (in the base)."""
    if symbol.settle is None:
        return "spot"
    if symbol.settle == symbol.quote:
        return "linear"
    if symbol.settle == symbol.base:
        return "inverse"
    raise errors.UnknownSymbol(
        f"bybit has no market {symbol}: perpetuals settle in the quote (BTC/USDT:USDT) "
        "or in the base (BTC/USD:BTC)"
    )


def is_inverse(symbol: Symbol) -> bool:
    """Inverse contracts count sizes in USD contracts, not in the base coin."""
    return symbol.settle is not None and symbol.settle == symbol.base


def native_symbol(symbol: Symbol) -> str:
    """``BTCUSDT`` for spot and linear, ``BTCUSD`` for inverse, ``BTCPERP`` for USDC perps."""
    category = category_of(symbol)
    if category == "linear" and symbol.quote == "USDC":
        return f"{symbol.base}PERP"
    return f"{symbol.base}{symbol.quote}"


def unified_symbol(native: str, category: str) -> Symbol:
    """The inverse of :func:`native_symbol` (for topics and listings without coin fields)."""
    name = native.upper()
    if category == "linear" and name.endswith("PERP"):
        return Symbol(name[:-4], "USDC", "USDC")
    for quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            base = name[: -len(quote)]
            if category == "spot":
                return Symbol(base, quote)
            if category == "linear":
                return Symbol(base, quote, quote)
            if category == "inverse":
                return Symbol(base, quote, base)
    raise errors.UnknownSymbol(f"bybit symbol {native!r} ({category}) has no known quote currency")


def parse_symbols(payload: Any, category: str) -> tuple[set[Symbol], str | None]:
    """Trading spot pairs and perpetuals of one ``instruments-info`` page, plus its cursor.

    Dated futures (``LinearFutures``/``InverseFutures``) are skipped: dccd's symbols
    name spot and perpetual markets only.

    Sample (abridged)::

        {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [
          {"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading",
           "baseCoin": "BTC", "quoteCoin": "USDT", "settleCoin": "USDT"}],
          "nextPageCursor": ""}, "time": 1707186451514}
    """
    try:
        result = payload["result"]
        rows = result["list"]
    except (KeyError, TypeError):
        raise errors.UnexpectedPayload(
            f"bybit instruments-info: no result.list in {payload!r:.200}"
        ) from None
    symbols: set[Symbol] = set()
    for row in rows:
        if not isinstance(row, dict) or row.get("status", "Trading") != "Trading":
            continue
        base, quote = str(row.get("baseCoin", "")), str(row.get("quoteCoin", ""))
        if not base or not quote:
            continue
        if category == "spot":
            symbols.add(Symbol(base, quote))
        elif row.get("contractType") in _PERPETUALS:
            settle = str(row.get("settleCoin") or (base if category == "inverse" else quote))
            symbols.add(Symbol(base, quote, settle))
    cursor = result.get("nextPageCursor") or None
    return symbols, cursor
