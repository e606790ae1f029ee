"""Coinbase Exchange (spot): REST candles/trades/book and the WebSocket feed.

``CoinbaseSource`` is what the registry builds for exchange id ``coinbase``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import CoinbaseRest
from .ws import CoinbaseWs

__all__ = ["CAPABILITY", "CoinbaseSource"]


class CoinbaseSource(CoinbaseWs, CoinbaseRest):
    """Coinbase Exchange over REST (``rest.py``) and its WebSocket feed (``ws.py``)."""
