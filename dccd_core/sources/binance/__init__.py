"""Binance native source: spot (``/api/v3``) and USD-M perpetuals (``/fapi/v1``).

``BinanceSource`` is what the registry builds for exchange id ``binance``.
"""

from __future__ import annotations

from typing import ClassVar

from ..archives.http_reader import HttpArchiveReader
from .archives import ARCHIVE_URL, BinanceArchives
from .capability import CAPABILITY
from .rest import BinanceRest
from .ws import BinanceWs

__all__ = ["CAPABILITY", "BinanceSource"]


class BinanceSource(BinanceWs, BinanceRest):
    """Binance over REST (``rest.py``) and WebSocket (``ws.py``); history also from the
    data.binance.vision archives (``archives.py``)."""

    archive_reader_class: ClassVar[type[HttpArchiveReader] | None] = BinanceArchives
    default_archive_url: ClassVar[str | None] = ARCHIVE_URL
