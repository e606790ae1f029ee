"""OKX v5 native source: REST pages (``rest.py``) and live streams (``ws.py``).

``OkxSource`` is what the registry builds for exchange id ``okx``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import OkxRest
from .ws import OkxWs

__all__ = ["CAPABILITY", "OkxSource"]


class OkxSource(OkxWs, OkxRest):
    """OKX over REST (``rest.py``) and WebSocket (``ws.py``)."""
