"""Bybit v5 native source: REST pages (``rest.py``) and live streams (``ws.py``).

``BybitSource`` is what the registry builds for exchange id ``bybit``.
"""

from __future__ import annotations

from typing import ClassVar

from ..archives.http_reader import HttpArchiveReader
from .archives import ARCHIVE_URL, BybitArchives
from .capability import CAPABILITY
from .rest import BybitRest
from .ws import BybitWs

__all__ = ["CAPABILITY", "BybitSource"]


class BybitSource(BybitWs, BybitRest):
    """Bybit over REST (``rest.py``) and WebSocket (``ws.py``); trade history of the
    perpetuals from the daily files (``archives.py``)."""

    archive_reader_class: ClassVar[type[HttpArchiveReader] | None] = BybitArchives
    default_archive_url: ClassVar[str | None] = ARCHIVE_URL
