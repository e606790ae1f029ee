"""Binance native source: spot (``/api/v3``) and USD-M perpetuals (``/fapi/v1``).

``BinanceSource`` is what the registry builds for exchange id ``binance``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import BinanceRest
from .ws import BinanceWs

__all__ = ["CAPABILITY", "BinanceSource"]


class BinanceSource(BinanceWs, BinanceRest):
    """Binance over REST (``rest.py``) and WebSocket (``ws.py``)."""
