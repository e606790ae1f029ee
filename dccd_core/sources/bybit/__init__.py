"""Bybit v5 native source: REST pages (``rest.py``) and live streams (``ws.py``).

``BybitSource`` is what the registry builds for exchange id ``bybit``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import BybitRest
from .ws import BybitWs

__all__ = ["CAPABILITY", "BybitSource"]


class BybitSource(BybitWs, BybitRest):
    """Bybit over REST (``rest.py``) and WebSocket (``ws.py``)."""
