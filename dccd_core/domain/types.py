"""Data types and candle spans."""

from __future__ import annotations

import re
from enum import StrEnum

from .errors import ConfigError

__all__ = [
    "CANDLE_TYPES",
    "DERIVATIVES_ONLY",
    "NO_REST_HISTORY",
    "SPANNED_TYPES",
    "STREAM_ONLY",
    "DataType",
    "Span",
]


class DataType(StrEnum):
    """What is collected. The value is the lake's top-level folder."""

    OHLC = "ohlc"
    TRADES = "trades"
    BOOK = "book"
    #: funding rates of perpetual swaps (one row per funding time)
    FUNDING = "funding"
    #: mark-price candles of a perpetual (the price liquidations and funding use)
    MARK = "mark"
    #: index-price candles of a perpetual's underlying (the spot index it tracks)
    INDEX = "index"
    #: open interest of a perpetual, sampled once per span (the exchange's period)
    OPEN_INTEREST = "open_interest"
    #: forced liquidation orders of a perpetual, as the exchange streams them (no REST history)
    LIQUIDATIONS = "liquidations"

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


#: Data types that exist only for perpetuals and futures: a spot symbol is refused.
DERIVATIVES_ONLY: frozenset[DataType] = frozenset(
    {
        DataType.FUNDING,
        DataType.MARK,
        DataType.INDEX,
        DataType.OPEN_INTEREST,
        DataType.LIQUIDATIONS,
    }
)
#: Data types that exist only on a WebSocket: no REST history to backfill or heal from.
STREAM_ONLY: frozenset[DataType] = frozenset({DataType.LIQUIDATIONS})
#: The refusal of a backfill (or a catalog ``data_types`` entry) of a stream-only type.
NO_REST_HISTORY = "liquidations have no REST history; stream them"
#: Candles with a span: traded prices (ohlc) and the mark and index prices.
CANDLE_TYPES: frozenset[DataType] = frozenset({DataType.OHLC, DataType.MARK, DataType.INDEX})
#: Data types with a span (a dataset per span): the candles and open interest's period.
SPANNED_TYPES: frozenset[DataType] = CANDLE_TYPES | {DataType.OPEN_INTEREST}


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
# Case-sensitive, as in ccxt and on every exchange: ``1m`` is a minute, ``1M`` a month.
_SPAN_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UPPER_RE = re.compile(r"^\s*(\d+)\s*([MHDW])\s*$")


def _label_seconds(text: str) -> int | None:
    """The seconds of a valid label (``1h``, ``60m``), else None. Case-sensitive."""
    match = _SPAN_RE.match(text)
    if match is None:
        return None
    unit = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}[match.group(2)]
    seconds = int(match.group(1)) * unit
    return seconds if seconds in _LABEL_BY_SECONDS else None


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
        """From a label (``1h``, ``60m`` normalised to ``1h``) or a number of seconds.

        Labels are case-sensitive: ``1M`` is one month (ccxt's and the exchanges'
        notation), which dccd does not support, so it is refused, never read as 1m.
        """
        if isinstance(value, Span):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if value in _LABEL_BY_SECONDS:
                return cls(_LABEL_BY_SECONDS[value], value)
        elif isinstance(value, str):
            seconds = _label_seconds(value)
            if seconds is not None:
                return cls(_LABEL_BY_SECONDS[seconds], seconds)
            upper = _UPPER_RE.match(value)
            if upper and upper.group(2) == "M":
                count = int(upper.group(1))
                months = "one month" if count == 1 else f"{count} months"
                raise ConfigError(
                    f"invalid span {value!r}: {count}M is {months} (ccxt and the exchanges "
                    "write months with a capital M); monthly candles are not supported: "
                    "use 1d or 1w (or 1m for one minute)"
                )
            lower = f"{upper.group(1)}{upper.group(2).lower()}" if upper else ""
            if lower and _label_seconds(lower) is not None:
                raise ConfigError(
                    f"invalid span {value!r}: spans are case-sensitive (1m is a minute, 1M a "
                    f"month); write {lower}"
                )
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
