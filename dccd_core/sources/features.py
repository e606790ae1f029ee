"""One-line ``Feature`` declarations for the capabilities exchanges declare.

Every exchange declares the same few features (candles, trades and a book, over REST
and over WebSocket); a constructor per (data type, transport) names the pair once, so
a ``capability.py`` reads as a table of the exchange's limits, not as repeated
``Feature(DataType..., Transport..., ...)`` blocks. ``span_table`` turns the exchange's
interval labels into the ``Span`` keyed maps the request builders use.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from dccd_core.domain import DataType, Feature, Span, Transport

__all__ = [
    "DERIVE_HINT",
    "rest_book",
    "rest_candles",
    "rest_funding",
    "rest_index",
    "rest_mark",
    "rest_open_interest",
    "rest_trades",
    "span_table",
    "ws_book",
    "ws_candles",
    "ws_trades",
]


#: What to do instead when an exchange does not serve a span (candles derived from trades).
DERIVE_HINT = (
    "derive candles from trades (catalog: list the span under `derive:` "
    "of a dataset with trades in data_types, e.g. derive: [4h])"
)


def span_table(labels: Mapping[str, str]) -> dict[Span, str]:
    """``{"1m": "1", "1h": "60"}`` (dccd span -> the exchange's label) keyed by ``Span``."""
    return {Span.parse(span): label for span, label in labels.items()}


#: ``Feature`` with the (data type, transport) pair filled in; the rest by keyword.
rest_candles = partial(Feature, DataType.OHLC, Transport.REST)
rest_trades = partial(Feature, DataType.TRADES, Transport.REST)
rest_book = partial(Feature, DataType.BOOK, Transport.REST)
rest_funding = partial(Feature, DataType.FUNDING, Transport.REST)
rest_mark = partial(Feature, DataType.MARK, Transport.REST)
rest_index = partial(Feature, DataType.INDEX, Transport.REST)
rest_open_interest = partial(Feature, DataType.OPEN_INTEREST, Transport.REST)
ws_candles = partial(Feature, DataType.OHLC, Transport.WS)
ws_trades = partial(Feature, DataType.TRADES, Transport.WS)
ws_book = partial(Feature, DataType.BOOK, Transport.WS)
ws_liquidations = partial(Feature, DataType.LIQUIDATIONS, Transport.WS)
