"""BitMEX: bucketed candles, trades and L2 book over REST and WebSocket.

``BitmexSource`` is what the registry builds for exchange id ``bitmex``.
"""

from __future__ import annotations

from typing import ClassVar

from ..archives.http_reader import HttpArchiveReader
from .archives import ARCHIVE_URL, BitmexArchives
from .capability import CAPABILITY
from .rest import BitmexRest
from .ws import BitmexWs

__all__ = ["CAPABILITY", "BitmexSource"]


class BitmexSource(BitmexWs, BitmexRest):
    """BitMEX over REST (``rest.py``) and its realtime WebSocket API (``ws.py``); trade
    history also from the daily dumps (``archives.py``)."""

    archive_reader_class: ClassVar[type[HttpArchiveReader] | None] = BitmexArchives
    default_archive_url: ClassVar[str | None] = ARCHIVE_URL
