"""One-line ``Feature`` declarations for the capabilities exchanges declare.

Every exchange declares the same few features (candles, trades and a book, over REST
and over WebSocket); a constructor per (data type, transport) names the pair once, so
a ``capability.py`` reads as a table of the exchange's limits, not as repeated
``Feature(DataType..., Transport..., ...)`` blocks. ``span_table`` turns the exchange's
interval labels into the ``Span`` keyed maps the request builders use.
"""

from __future__ import annotations

from collections.abc import Mapping

from dccd_core.domain import DataType, Feature, PageDirection, Span, Transport

__all__ = [
    "rest_book",
    "rest_candles",
    "rest_trades",
    "span_table",
    "ws_book",
    "ws_candles",
    "ws_trades",
]

FORWARD = PageDirection.FORWARD


def span_table(labels: Mapping[str, str]) -> dict[Span, str]:
    """``{"1m": "1", "1h": "60"}`` (dccd span -> the exchange's label) keyed by ``Span``."""
    return {Span.parse(span): label for span, label in labels.items()}


def rest_candles(
    page_limit: int,
    spans: tuple[Span, ...],
    direction: PageDirection = FORWARD,
    *,
    weight: int = 1,
    history_bars: int | None = None,
    alternative: str | None = None,
) -> Feature:
    """Candle pages of ``page_limit`` bars over REST."""
    return Feature(
        DataType.OHLC,
        Transport.REST,
        page_limit=page_limit,
        direction=direction,
        spans=spans,
        weight=weight,
        history_bars=history_bars,
        alternative=alternative,
    )


def rest_trades(
    page_limit: int,
    direction: PageDirection = FORWARD,
    *,
    weight: int = 1,
    recent_only: bool = False,
    alternative: str | None = None,
) -> Feature:
    """Trade pages of ``page_limit`` trades over REST (``recent_only``: no history)."""
    return Feature(
        DataType.TRADES,
        Transport.REST,
        page_limit=page_limit,
        direction=direction,
        weight=weight,
        recent_only=recent_only,
        alternative=alternative,
    )


def rest_book(book_depths: tuple[int, ...] = (), *, weight: int = 1) -> Feature:
    """Order-book snapshots over REST (``book_depths``: the depths it accepts)."""
    return Feature(DataType.BOOK, Transport.REST, book_depths=book_depths, weight=weight)


def ws_trades(channel: str) -> Feature:
    """Live trades on ``channel``."""
    return Feature(DataType.TRADES, Transport.WS, channel=channel)


def ws_candles(spans: tuple[Span, ...], channel: str, alternative: str | None = None) -> Feature:
    """Live candles of ``spans`` on ``channel``."""
    return Feature(
        DataType.OHLC, Transport.WS, spans=spans, channel=channel, alternative=alternative
    )


def ws_book(book_depths: tuple[int, ...], channel: str) -> Feature:
    """A live book of up to ``book_depths`` levels on ``channel``."""
    return Feature(DataType.BOOK, Transport.WS, book_depths=book_depths, channel=channel)
