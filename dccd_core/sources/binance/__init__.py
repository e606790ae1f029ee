"""Binance native source: spot (``/api/v3``) and USD-M perpetuals (``/fapi/v1``).

``BinanceSource`` is what the registry builds for exchange id ``binance``.
"""

from __future__ import annotations

from .capability import CAPABILITY
from .rest import BinanceRestSource

__all__ = ["CAPABILITY", "BinanceSource"]

BinanceSource = BinanceRestSource
