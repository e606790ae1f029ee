"""Kraken spot: REST OHLC (last 720 bars)/trades/book and WebSocket v2.

``KrakenSource`` is what the registry builds for exchange id ``kraken``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import KrakenRest
from .ws import KrakenWs

__all__ = ["CAPABILITY", "KrakenSource"]


class KrakenSource(KrakenWs, KrakenRest):
    """Kraken over REST (``rest.py``) and WebSocket v2 (``ws.py``)."""
