"""The identity of one dataset: (exchange, symbol, data type, span)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError
from .symbols import Symbol
from .types import DERIVATIVES_ONLY, SPANNED_TYPES, DataType, Span

__all__ = ["DatasetKey", "validate_exchange_id"]

_EXCHANGE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def validate_exchange_id(exchange: str) -> str:
    """Lower-case and check an exchange id; it becomes a folder name, so no ``/`` or ``..``."""
    text = str(exchange).strip().lower()
    if not _EXCHANGE_RE.match(text):
        raise ConfigError(
            f"invalid exchange id {exchange!r}: use lower-case letters, digits and _ "
            "(e.g. binance, coinbase)"
        )
    return text


@dataclass(frozen=True, slots=True)
class DatasetKey:
    """One dataset of the lake. Candles (ohlc, mark, index) and open interest need a span;
    the others must not have one."""

    exchange: str
    symbol: Symbol
    data_type: DataType
    span: Span | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exchange", validate_exchange_id(self.exchange))
        if self.data_type in SPANNED_TYPES and self.span is None:
            raise ConfigError(f"{self.data_type} needs a span (e.g. --span 1m)")
        if self.data_type not in SPANNED_TYPES and self.span is not None:
            raise ConfigError(f"{self.data_type} has no span; drop the span argument")
        if self.data_type in DERIVATIVES_ONLY and not self.symbol.is_perpetual:
            sym = self.symbol
            raise ConfigError(
                f"{self.data_type} needs a perpetual symbol like {sym.base}/{sym.quote}:"
                f"{sym.quote}, not the spot symbol {sym}"
            )

    @classmethod
    def of(
        cls,
        exchange: str,
        symbol: str | Symbol,
        data_type: str | DataType,
        span: str | int | Span | None = None,
    ) -> DatasetKey:
        """Build from user-facing strings, validating each part."""
        dt = DataType.parse(data_type)
        sym = symbol if isinstance(symbol, Symbol) else Symbol.parse(symbol)
        sp = Span.parse(span) if span is not None else None
        return cls(exchange, sym, dt, sp)

    @property
    def name(self) -> str:
        """The asset-key name part: ``btc_usdt_1m``, ``btc_usdt``."""
        return self.symbol.key_name + (f"_{self.span.label}" if self.span else "")

    @property
    def asset_key_path(self) -> list[str]:
        """``["binance", "ohlc", "btc_usdt_1m"]``."""
        return [self.exchange, self.data_type.value, self.name]

    @property
    def job_name(self) -> str:
        """``binance__ohlc__btc_usdt_1m``."""
        return "__".join(self.asset_key_path)

    def __str__(self) -> str:
        span = f" {self.span}" if self.span else ""
        return f"{self.exchange} {self.symbol} {self.data_type}{span}"
