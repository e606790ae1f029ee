"""Bitfinex market names <-> ccxt unified symbols.

Bitfinex trading pairs are ``t`` + BASE + QUOTE when both codes have three letters
(``tBTCUSD``), and ``t`` + BASE + ``:`` + QUOTE otherwise (``tAVAX:USD``). Perpetuals
are ``tBTCF0:USTF0`` (base and settle currency with an ``F0`` suffix, linear, settled in
the quote). Bitfinex uses its own codes for some currencies: ``UST`` is USDT, ``UDC``
is USDC... (``/v2/conf/pub:map:currency:sym``). Lists of names:
``/v2/conf/pub:list:pair:exchange`` (spot) and ``/v2/conf/pub:list:pair:futures``.
"""

from __future__ import annotations

from typing import Any

from dccd_core.domain import Symbol, errors

__all__ = ["from_native", "native_currency", "parse_symbols", "to_native", "unified_currency"]

#: Bitfinex code -> common code (the ones a user is likely to meet).
_ALIASES: dict[str, str] = {
    "UST": "USDT",
    "UDC": "USDC",
    "TSD": "TUSD",
    "EUT": "EURT",
    "EUS": "EURS",
    "DSH": "DASH",
    "IOT": "IOTA",
    "QTM": "QTUM",
    "MNA": "MANA",
    "ALG": "ALGO",
    "ATO": "ATOM",
    "DAT": "DATA",
    "STJ": "STORJ",
    "BCHN": "BCH",
    "TERRAUST": "USTC",
}
_NATIVE: dict[str, str] = {common: native for native, common in _ALIASES.items()}
_PERP_SUFFIX = "F0"


def unified_currency(code: str) -> str:
    """Bitfinex currency code -> common code (``UST`` -> ``USDT``)."""
    return _ALIASES.get(code, code)


def native_currency(code: str) -> str:
    """Common currency code -> Bitfinex code (``USDT`` -> ``UST``)."""
    return _NATIVE.get(code, code)


def to_native(symbol: Symbol) -> str:
    """Unified -> Bitfinex: ``BTC/USDT`` -> ``tBTCUST``, ``AVAX/USD`` -> ``tAVAX:USD``,
    ``BTC/USDT:USDT`` -> ``tBTCF0:USTF0``.

    A perpetual must be settled in its quote currency (Bitfinex perps are linear).
    """
    base = native_currency(symbol.base)
    quote = native_currency(symbol.quote)
    if symbol.settle is not None:
        if symbol.settle != symbol.quote:
            raise errors.UnknownSymbol(
                f"bitfinex has no {symbol}: its perpetuals are linear, settled in the quote "
                f"currency (e.g. {symbol.base}/{symbol.quote}:{symbol.quote})"
            )
        return f"t{base}{_PERP_SUFFIX}:{quote}{_PERP_SUFFIX}"
    if len(base) == 3 and len(quote) == 3:
        return f"t{base}{quote}"
    return f"t{base}:{quote}"


def from_native(name: str) -> Symbol:
    """``tBTCUSD`` / ``BTCUSD`` / ``tAVAX:USD`` / ``tBTCF0:USTF0`` -> unified symbol."""
    text = name[1:] if name.startswith("t") else name
    if ":" in text:
        base, quote = text.split(":", 1)
    elif len(text) == 6:
        base, quote = text[:3], text[3:]
    else:
        raise errors.UnexpectedPayload(f"bitfinex pair name {name!r} has no BASE:QUOTE split")
    if base.endswith(_PERP_SUFFIX) and quote.endswith(_PERP_SUFFIX):
        base_code = unified_currency(base[: -len(_PERP_SUFFIX)])
        quote_code = unified_currency(quote[: -len(_PERP_SUFFIX)])
        return Symbol(base_code, quote_code, quote_code)
    return Symbol(unified_currency(base), unified_currency(quote))


def parse_symbols(data: Any) -> set[Symbol]:
    """``/v2/conf/pub:list:pair:exchange`` (or ``...:futures``) -> the listed symbols.

    Docs: https://docs.bitfinex.com/reference/rest-public-conf . Body: one list
    nested in another::

        [["BTCUSD", "ETHUSD", "BTCUST", "AVAX:USD", ...]]
    """
    if (
        not isinstance(data, list)
        or len(data) != 1
        or not isinstance(data[0], list)
        or not all(isinstance(n, str) for n in data[0])
    ):
        raise errors.UnexpectedPayload(
            f"bitfinex pair list: expected [[names...]], got {str(data)[:80]}"
        )
    return {from_native(name) for name in data[0]}
