"""Kraken pair names <-> unified symbols.

Kraken calls bitcoin ``XBT`` and dogecoin ``XDG``, prefixes legacy assets with X/Z in
its internal names (``XXBTZUSD``), keys REST results by that internal name, accepts the
``altname`` (``XBTUSD``) as the ``pair`` parameter, and names pairs ``XBT/USD`` in
AssetPairs' ``wsname`` but ``BTC/USD`` on WebSocket v2.
Docs: https://docs.kraken.com/api/docs/rest-api/get-tradable-asset-pairs
"""

from __future__ import annotations

from typing import Any

from dccd_core.domain import Symbol, errors

__all__ = [
    "ASSET_ALIASES",
    "native_symbol",
    "parse_symbols",
    "unified_asset",
    "unified_symbol",
    "ws_symbol",
]

#: Kraken asset code (any form) -> unified code.
ASSET_ALIASES: dict[str, str] = {
    "XBT": "BTC",
    "XXBT": "BTC",
    "XDG": "DOGE",
    "XXDG": "DOGE",
    "XETH": "ETH",
    "XLTC": "LTC",
    "XXRP": "XRP",
    "XXLM": "XLM",
    "XXMR": "XMR",
    "XZEC": "ZEC",
    "XETC": "ETC",
    "XMLN": "MLN",
    "XREP": "REP",
    "ZUSD": "USD",
    "ZEUR": "EUR",
    "ZGBP": "GBP",
    "ZJPY": "JPY",
    "ZCAD": "CAD",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}
#: Unified code -> Kraken's REST code.
_REST_CODES: dict[str, str] = {"BTC": "XBT", "DOGE": "XDG"}


def unified_asset(code: str) -> str:
    """``XXBT``/``XBT`` -> ``BTC``, ``ZUSD`` -> ``USD``; other codes unchanged."""
    upper = str(code).upper()
    return ASSET_ALIASES.get(upper, upper)


def native_symbol(symbol: Symbol) -> str:
    """``BTC/USD`` -> ``XBTUSD`` (the altname, accepted as ``pair`` by every endpoint)."""
    if symbol.is_perpetual:
        raise errors.UnknownSymbol(
            f"kraken spot lists no perpetual {symbol}; use {symbol.base}/{symbol.quote} "
            "(Kraken Futures is a different API)"
        )
    return _REST_CODES.get(symbol.base, symbol.base) + _REST_CODES.get(symbol.quote, symbol.quote)


def ws_symbol(symbol: Symbol) -> str:
    """``BTC/USD`` as WebSocket v2 names it (unified codes)."""
    return f"{symbol.base}/{symbol.quote}"


def unified_symbol(name: str) -> Symbol:
    """``XBT/USD`` or ``BTC/USD`` (wsname or v2 symbol) -> ``BTC/USD``."""
    parts = str(name).split("/")
    if len(parts) != 2:
        raise errors.UnexpectedPayload(f"kraken pair name {name!r} is not BASE/QUOTE")
    try:
        return Symbol.parse(f"{unified_asset(parts[0])}/{unified_asset(parts[1])}")
    except errors.ConfigError as exc:
        raise errors.UnexpectedPayload(f"kraken pair name {name!r}: {exc}") from exc


def parse_symbols(payload: Any) -> dict[Symbol, str]:
    """``GET /0/public/AssetPairs`` -> unified symbol -> altname.

    Sample: ``{"error": [], "result": {"XXBTZUSD": {"altname": "XBTUSD",
    "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD", "status": "online", ...}}}``
    """
    result = payload.get("result") if isinstance(payload, dict) else None
    if not isinstance(result, dict):
        raise errors.UnexpectedPayload("kraken AssetPairs: expected {'result': {pair: info}}")
    out: dict[Symbol, str] = {}
    for key, info in result.items():
        if not isinstance(info, dict) or str(key).endswith(".d"):
            continue  # ".d" pairs are dark-pool duplicates
        if info.get("status", "online") not in ("online", "cancel_only", "post_only"):
            continue
        wsname = info.get("wsname")
        try:
            if wsname:
                symbol = unified_symbol(wsname)
            else:
                symbol = Symbol.parse(
                    f"{unified_asset(info['base'])}/{unified_asset(info['quote'])}"
                )
        except (errors.UnexpectedPayload, errors.ConfigError, KeyError):
            continue
        out[symbol] = str(info.get("altname", key))
    return out
