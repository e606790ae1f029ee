"""Binance market names: ``BTC/USDT`` -> ``BTCUSDT`` on spot, ``BTC/USDT:USDT`` ->
``BTCUSDT`` on USD-M futures (``/fapi``). COIN-M inverse perpetuals (``/dapi``) are
not served by this source.

``exchangeInfo`` lists markets (spot ``/api/v3/exchangeInfo``, futures
``/fapi/v1/exchangeInfo``); sample (abridged)::

    {"timezone": "UTC", "serverTime": 1704067200000, "symbols": [
      {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"}]}

Futures entries add ``"contractType": "PERPETUAL"`` and ``"marginAsset": "USDT"``.
"""

from __future__ import annotations

from typing import Any, Literal

from dccd_core.domain import Symbol, errors

from .. import windows

__all__ = ["MARKETS", "Market", "market_of", "native_symbol", "parse_symbols", "usdm_symbol"]

Market = Literal["spot", "usdm"]
#: both markets, in the order their listings are asked
MARKETS: tuple[Market, ...] = ("spot", "usdm")


def usdm_symbol(symbol: Symbol, refusal: str) -> str:
    """The native symbol of a USD-M perpetual (the derivatives series serve no other
    market); any other symbol is refused with ``refusal`` before a request."""
    windows.require_perpetual(market_of(symbol) == "usdm", refusal)
    return native_symbol(symbol)


def market_of(symbol: Symbol) -> Market:
    """Spot for ``BASE/QUOTE``, USD-M futures for ``BASE/QUOTE:QUOTE``."""
    if symbol.settle is None:
        return "spot"
    if symbol.settle == symbol.quote:
        return "usdm"
    raise errors.NoCapability(
        f"binance: {symbol} is a COIN-M inverse perpetual, which dccd's Binance source "
        f"does not serve; use the USD-M market {symbol.base}/USDT:USDT"
    )


def native_symbol(symbol: Symbol) -> str:
    """``BTCUSDT`` for both ``BTC/USDT`` and ``BTC/USDT:USDT`` (the host tells them apart)."""
    market_of(symbol)
    return f"{symbol.base}{symbol.quote}"


def parse_symbols(data: Any, market: Market) -> set[Symbol]:
    """Every market listed (delisted ones included: their history can still be fetched)."""
    if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
        raise errors.UnexpectedPayload(
            "binance exchangeInfo: expected an object with a 'symbols' list"
        )
    found: set[Symbol] = set()
    for entry in data["symbols"]:
        try:
            base, quote = str(entry["baseAsset"]).upper(), str(entry["quoteAsset"]).upper()
        except (KeyError, TypeError) as exc:
            raise errors.UnexpectedPayload(
                f"binance exchangeInfo: malformed entry {entry!r}"
            ) from exc
        if not (base.isalnum() and quote.isalnum()) or len(base) > 20 or len(quote) > 20:
            continue  # odd test assets; they cannot be dccd symbols
        if market == "spot":
            found.add(Symbol(base, quote))
        elif entry.get("contractType") == "PERPETUAL":
            settle = str(entry.get("marginAsset", quote)).upper()
            found.add(Symbol(base, quote, settle))
    return found
