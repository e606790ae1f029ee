"""BitMEX: bucketed candles, trades and L2 book over REST and WebSocket."""

from .capability import CAPABILITY
from .source import BitmexSource

__all__ = ["CAPABILITY", "BitmexSource"]
