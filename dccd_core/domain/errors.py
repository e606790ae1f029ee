"""The one error tree of dccd.

Every failure a user can cause or meet is a ``DccdError``; the CLI turns any of them
into one line and exit code 2, so nothing here should need a traceback to explain.

    DccdError
    ├── ConfigError          bad catalog, bad argument, unknown name (also a ValueError)
    │   ├── CatalogError     an invalid catalog: one line per problem in ``problems``
    │   ├── UnknownDataset   a dataset the lake at that root does not hold
    │   ├── UnknownExchange
    │   └── UnknownSymbol
    ├── NoCapability         the exchange cannot serve this (names the alternative)
    ├── TransportError       the wire failed after retries
    │   ├── RateLimited      429/418 that outlived our patience
    │   ├── RetryExhausted   transient faults that never cleared
    │   └── ExchangeError    an API error reported by the exchange (HTTP 4xx or inside a 200)
    ├── SourceError          the exchange answered, but not with what we can store
    │   ├── UnexpectedPayload
    │   └── PagingStalled    pages that never move on (repeats, stuck cursor, off-window)
    └── StoreError           the lake refused or is damaged
        ├── SchemaMismatch   rows that do not fit the data type's schema
        └── CorruptFile      a period file that cannot be read
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CatalogError",
    "ConfigError",
    "CorruptFile",
    "DccdError",
    "ExchangeError",
    "NoCapability",
    "PagingStalled",
    "RateLimited",
    "RetryExhausted",
    "SchemaMismatch",
    "SourceError",
    "StoreError",
    "TransportError",
    "UnexpectedPayload",
    "UnknownDataset",
    "UnknownExchange",
    "UnknownSymbol",
]


class DccdError(Exception):
    """Base of every error dccd raises on purpose; its message is meant for a user."""


class ConfigError(DccdError, ValueError):
    """A setting, argument or catalog entry is wrong; the message names the fix."""


class CatalogError(ConfigError):
    """An invalid catalog. ``problems`` holds one line per problem, each naming the file,
    the key path, what is wrong and the fix; ``str()`` is the whole report."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems) or (message,)

    def __reduce__(self) -> tuple[type[CatalogError], tuple[str, tuple[str, ...]]]:
        return type(self), (str(self), self.problems)


class UnknownDataset(ConfigError):
    """A dataset the lake does not hold (never fetched there, or another root)."""


class UnknownExchange(ConfigError):
    """An exchange id that no source knows."""


class UnknownSymbol(ConfigError):
    """A symbol the exchange does not list."""


class NoCapability(DccdError):
    """The exchange's API cannot serve the request (data type, span, depth, history)."""


class TransportError(DccdError):
    """The exchange could not be reached or kept failing."""


class RateLimited(TransportError):
    """The exchange kept rate-limiting us (429/418) beyond the retry budget."""


class RetryExhausted(TransportError):
    """Transient faults (timeouts, resets, 5xx, broken JSON) outlived the retry budget."""


class ExchangeError(TransportError):
    """The exchange reported an error (a 4xx, or an error code inside a 200 body)."""


class SourceError(DccdError):
    """The exchange answered with something a parser refuses to store."""


class UnexpectedPayload(SourceError):
    """A response whose shape, units or values do not match the exchange's contract."""


class PagingStalled(SourceError):
    """Pages that stopped moving through the window: the same page again, a cursor that
    does not move, or pages outside the window; raised after a bounded number of them."""


class StoreError(DccdError):
    """The Parquet lake refused a write or holds something unreadable."""


class SchemaMismatch(StoreError):
    """Rows whose columns or dtypes do not match the data type's schema."""


class CorruptFile(StoreError):
    """A period file that exists but cannot be read (truncated, not Parquet)."""
