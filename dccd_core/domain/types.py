"""Data types and candle spans."""

from __future__ import annotations

import re
from enum import StrEnum

from .errors import ConfigError

__all__ = ["DataType", "Span"]


class DataType(StrEnum):
    """What is collected. The value is the lake's top-level folder."""

    OHLC = "ohlc"
    TRADES = "trades"
    BOOK = "book"

    @classmethod
    def parse(cls, text: str | DataType) -> DataType:
        """Parse a data type name; an unknown one lists the accepted names."""
        if isinstance(text, DataType):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ConfigError(f"unknown data type {text!r}: expected one of {names}") from None


_SPAN_SECONDS: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1_800,
    "1h": 3_600,
    "2h": 7_200,
    "4h": 14_400,
    "6h": 21_600,
    "8h": 28_800,
    "12h": 43_200,
    "1d": 86_400,
    "1w": 604_800,
}
_LABEL_BY_SECONDS = {v: k for k, v in _SPAN_SECONDS.items()}
_SPAN_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)


class Span:
    """A candle span: one of the labels 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w.

    Weekly candles start on Monday 00:00 UTC (the exchanges' convention), which is
    epoch-aligned to Thursday + 4 days; ``floor`` handles that.
    """

    __slots__ = ("label", "seconds")

    label: str
    seconds: int

    def __init__(self, label: str, seconds: int) -> None:
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "seconds", seconds)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Span is immutable")

    @classmethod
    def all(cls) -> list[Span]:
        """Every supported span, shortest first."""
        return [cls(label, secs) for label, secs in _SPAN_SECONDS.items()]

    @classmethod
    def parse(cls, value: str | int | Span) -> Span:
        """From a label (``1h``, ``60m`` normalised to ``1h``) or a number of seconds."""
        if isinstance(value, Span):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if value in _LABEL_BY_SECONDS:
                return cls(_LABEL_BY_SECONDS[value], value)
        elif isinstance(value, str):
            match = _SPAN_RE.match(value)
            if match:
                unit = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}[match.group(2).lower()]
                seconds = int(match.group(1)) * unit
                if seconds in _LABEL_BY_SECONDS:
                    return cls(_LABEL_BY_SECONDS[seconds], seconds)
        labels = " ".join(_SPAN_SECONDS)
        raise ConfigError(f"invalid span {value!r}: expected one of {labels}")

    @property
    def ns(self) -> int:
        """The span's length in ns."""
        return self.seconds * 1_000_000_000

    @property
    def ms(self) -> int:
        """The span's length in ms."""
        return self.seconds * 1_000

    def floor(self, ts: int) -> int:
        """The open time (ns) of the bar containing ``ts``."""
        offset = 4 * 86_400 * 1_000_000_000 if self.seconds == 604_800 else 0
        return ts - (ts - offset) % self.ns

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Span) and other.seconds == self.seconds

    def __lt__(self, other: Span) -> bool:
        return self.seconds < other.seconds

    def __hash__(self) -> int:
        return hash(self.seconds)

    def __repr__(self) -> str:
        return f"Span({self.label!r})"

    def __str__(self) -> str:
        return self.label
