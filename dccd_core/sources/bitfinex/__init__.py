"""Bitfinex (public API v2): candles, trades and book over REST and WebSocket."""

from .capability import CAPABILITY
from .source import BitfinexSource

__all__ = ["CAPABILITY", "BitfinexSource"]
