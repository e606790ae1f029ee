"""Coinbase Exchange (spot): REST candles/trades/book and the WebSocket feed."""

from .capability import CAPABILITY
from .source import CoinbaseSource

__all__ = ["CAPABILITY", "CoinbaseSource"]
