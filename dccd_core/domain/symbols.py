"""ccxt unified symbols: ``BTC/USDT`` (spot), ``BTC/USDT:USDT`` (linear perpetual),
``BTC/USD:BTC`` (inverse perpetual).

Exchange-native names (XBTUSD, tBTCUSD, BTC-USDT-SWAP) belong to the sources; the
store and the catalog only ever see this form, so one dataset has one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["Symbol"]

_CODE = r"[A-Z0-9]{1,20}"
_PATTERN = re.compile(rf"^({_CODE})/({_CODE})(?::({_CODE}))?$")
_FS_PATTERN = re.compile(rf"^({_CODE})-({_CODE})(?:-({_CODE}))?$")
_ACCEPTED = "BASE/QUOTE (spot, e.g. BTC/USDT) or BASE/QUOTE:SETTLE (perpetual, e.g. BTC/USDT:USDT)"


@dataclass(frozen=True, order=True, slots=True)
class Symbol:
    """A market in ccxt's unified form; codes are upper-case letters and digits only.

    The restricted alphabet is also what keeps a symbol safe as a path component.
    """

    base: str
    quote: str
    settle: str | None = None

    @classmethod
    def parse(cls, text: str) -> Symbol:
        """Parse ``btc/usdt``, ``BTC/USDT:USDT``...; case-insensitive."""
        if not isinstance(text, str):
            raise ConfigError(f"invalid symbol {text!r}: expected {_ACCEPTED}")
        return cls._matched(_PATTERN, text, "symbol", _ACCEPTED)

    @classmethod
    def from_path(cls, text: str) -> Symbol:
        """Parse the lake's folder form ``BTC-USDT[-USDT]`` back into a symbol."""
        return cls._matched(_FS_PATTERN, text, "symbol folder", "BASE-QUOTE[-SETTLE]")

    @classmethod
    def _matched(cls, pattern: re.Pattern[str], text: str, what: str, expected: str) -> Symbol:
        match = pattern.match(text.strip().upper())
        if match is None:
            raise ConfigError(f"invalid {what} {text!r}: expected {expected}")
        base, quote, settle = match.groups()
        return cls(base, quote, settle)

    @property
    def is_perpetual(self) -> bool:
        """Perpetuals carry a settle currency; spot markets do not."""
        return self.settle is not None

    @property
    def market_kind(self) -> str:
        """``spot``, ``linear`` (settled in the quote) or ``inverse`` (settled in the base):
        the vocabulary ``ArchiveFeature.markets`` uses."""
        if self.settle is None:
            return "spot"
        return "inverse" if self.settle == self.base else "linear"

    @property
    def path_name(self) -> str:
        """The lake folder name: ``BTC-USDT`` or ``BTC-USDT-USDT``."""
        return "-".join(p for p in (self.base, self.quote, self.settle) if p)

    @property
    def key_name(self) -> str:
        """The Dagster asset-key name part: ``btc_usdt`` or ``btc_usdt_usdt``."""
        return self.path_name.replace("-", "_").lower()

    def __str__(self) -> str:
        text = f"{self.base}/{self.quote}"
        return f"{text}:{self.settle}" if self.settle else text
