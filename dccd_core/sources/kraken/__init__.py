"""Kraken spot: REST OHLC (last 720 bars)/trades/book and WebSocket v2."""

from .capability import CAPABILITY
from .source import KrakenSource

__all__ = ["CAPABILITY", "KrakenSource"]
