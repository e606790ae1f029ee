"""Bybit v5 native source: REST pages (``rest.py``) and live streams (``ws.py``).

``BybitSource`` is what the registry builds for exchange id ``bybit``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import BybitRestSource

__all__ = ["CAPABILITY", "BybitSource"]

BybitSource = BybitRestSource
