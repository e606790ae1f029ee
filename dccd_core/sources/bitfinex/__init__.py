"""Bitfinex (public API v2): candles, trades and book over REST and WebSocket.

``BitfinexSource`` is what the registry builds for exchange id ``bitfinex``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import BitfinexRest
from .ws import BitfinexWs

__all__ = ["CAPABILITY", "BitfinexSource"]


class BitfinexSource(BitfinexWs, BitfinexRest):
    """Bitfinex over REST (``rest.py``) and WebSocket v2 (``ws.py``)."""
