"""Kraken's CRC32 book checksum (WebSocket v1 and v2 alike).

Docs: https://docs.kraken.com/api/docs/guides/spot-ws-book-v2
Over the top 10 levels: asks from the lowest price up, then bids from the highest down;
for each level the price text then the quantity text, each with the decimal point and
the leading zeros removed (``"0.05005"`` -> ``"5005"``); CRC32 of the concatenation as an
unsigned 32-bit integer. The texts must be the exchange's own, with their precision.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["CHECKSUM_DEPTH", "book_checksum", "checksum_text"]

CHECKSUM_DEPTH = 10


def checksum_text(value: str) -> str:
    """``"0.00000500"`` -> ``"500"``: no decimal point, no leading zeros."""
    return value.replace(".", "").lstrip("0")


def book_checksum(
    bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]
) -> int:
    """CRC32 of the top 10 asks then top 10 bids, each side given best first."""
    parts = [
        checksum_text(price) + checksum_text(qty)
        for levels in (asks[:CHECKSUM_DEPTH], bids[:CHECKSUM_DEPTH])
        for price, qty in levels
    ]
    return zlib.crc32("".join(parts).encode()) & 0xFFFFFFFF
