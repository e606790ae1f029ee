"""The interleaved CRC32 book checksum that OKX and Bitfinex both send.

Both hash the top 25 levels of each side, interleaved ``bid0 price:bid0 amount:ask0
price:ask0 amount:bid1 ...`` as the exchange's own texts (where one side is shorter,
the other's levels follow alone), and send CRC32 of that text as a *signed* 32-bit
integer. One implementation, so a fix (say, to the short-side rule) reaches both.
Docs: https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel
and https://docs.bitfinex.com/reference/ws-public-books (checksum section). Kraken
hashes another layout (``kraken/checksum.py``).

Sample (OKX docs): bids ``[("3366.1", "7"), ("3366", "6")]``, asks ``[("3366.8", "9"),
("3368", "8")]`` -> ``"3366.1:7:3366.8:9:3366:6:3368:8"`` -> ``-1881014294``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["interleaved_checksum", "interleaved_text"]

Levels = Sequence[tuple[str, str]]


def interleaved_text(bids: Levels, asks: Levels, depth: int) -> str:
    """``bid0px:bid0sz:ask0px:ask0sz:bid1px:...`` over the top ``depth`` of each side."""
    parts: list[str] = []
    bids, asks = bids[:depth], asks[:depth]
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    return ":".join(parts)


def interleaved_checksum(bids: Levels, asks: Levels, depth: int) -> int:
    """CRC32 of :func:`interleaved_text` as a signed 32-bit integer."""
    crc = zlib.crc32(interleaved_text(bids, asks, depth).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc
