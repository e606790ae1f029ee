"""BitMEX instrument names <-> ccxt unified symbols.

BitMEX calls bitcoin ``XBT``. Perpetual swaps are BASE + QUOTE: ``XBTUSD`` is the
inverse perpetual settled in bitcoin (``BTC/USD:BTC``), ``ETHUSD`` a quanto settled in
bitcoin (``ETH/USD:BTC``), ``XBTUSDT`` / ``ETHUSDT`` linear perpetuals settled in USDT
(``BTC/USDT:USDT``). Spot pairs carry an underscore: ``XBT_USDT`` (``BTC/USDT``).
Dated futures (``XBTZ24``) have no unified perpetual form and are not mapped. Names:
``/api/v1/instrument/active`` (``typ`` FFWCSX = perpetual, IFXXXP = spot).
"""

from __future__ import annotations

from dccd_core.domain import Symbol, errors

__all__ = ["PERPETUAL_TYPES", "SPOT_TYPES", "from_native", "to_native"]

_ALIASES = {"XBT": "BTC"}
_NATIVE = {v: k for k, v in _ALIASES.items()}
#: Perpetual quote currencies, longest first, and the settle currency they imply.
_PERP_QUOTES: tuple[tuple[str, str | None], ...] = (
    ("USDT", "USDT"),
    ("USDC", "USDC"),
    ("USD", "BTC"),
    ("EUR", "BTC"),
)
PERPETUAL_TYPES = frozenset({"FFWCSX", "FFWCSF"})
SPOT_TYPES = frozenset({"IFXXXP"})


def _unified(code: str) -> str:
    return _ALIASES.get(code, code)


def _native(code: str) -> str:
    return _NATIVE.get(code, code)


def to_native(symbol: Symbol) -> str:
    """Unified -> BitMEX: ``BTC/USD:BTC`` -> ``XBTUSD``, ``BTC/USDT:USDT`` -> ``XBTUSDT``,
    ``BTC/USDT`` -> ``XBT_USDT``."""
    base, quote = _native(symbol.base), _native(symbol.quote)
    if symbol.settle is None:
        return f"{base}_{quote}"
    implied = dict(_PERP_QUOTES).get(symbol.quote)
    if implied is None or symbol.settle != implied:
        hint = (
            f"{symbol.base}/{symbol.quote}:{implied}" if implied else "BTC/USD:BTC or BTC/USDT:USDT"
        )
        raise errors.UnknownSymbol(f"bitmex has no perpetual {symbol}; did you mean {hint}?")
    return f"{base}{quote}"


def from_native(name: str) -> Symbol:
    """``XBTUSD`` / ``ETHUSD`` / ``XBTUSDT`` / ``XBT_USDT`` -> unified symbol."""
    if "_" in name:
        base, quote = name.split("_", 1)
        return Symbol(_unified(base), _unified(quote))
    for quote, settle in _PERP_QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return Symbol(_unified(name[: -len(quote)]), quote, settle)
    raise errors.UnexpectedPayload(f"bitmex instrument {name!r} is not a perpetual or spot name")
