"""One live order book kept from a snapshot plus deltas, checked on every apply.

Why its own module: book upkeep is pure bookkeeping (no I/O) with sharp edges —
update-id rules, checksums, crossed books — and deserves tests of its own. The
stream feeds it :class:`~dccd_core.sources.ws.WsBook` events; any doubt (a sequence
gap, a checksum mismatch, best bid >= best ask) makes it *unsynced*, and the stream
resyncs it (a new REST snapshot, or a resubscription) before sampling it again.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from dccd_core.domain.types import DataType
from dccd_core.sources.ws import BookSync, SeqCheck, WsBook, WsSource
from dccd_core.storage.frames import polars_schema

__all__ = ["LiveBook", "book_frame"]

_BOOK_SCHEMA: pl.Schema = polars_schema(DataType.BOOK)


@dataclass(slots=True)
class LiveBook:
    """The book of one symbol. ``synced`` is False until a snapshot arrives.

    ``max_depth``: levels kept a side after every message, where the protocol declares
    ``truncate_to_depth`` (Kraken sends no delete for a level pushed out of range).
    """

    source: WsSource
    max_depth: int | None = None
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    texts: dict[tuple[str, float], tuple[str, str]] = field(default_factory=dict)
    last_seq: int | None = None
    last_ts: int = 0
    synced: bool = False
    first_delta: bool = False
    resyncs: int = 0
    last_problem: str = ""

    def reset(self, problem: str) -> None:
        """Forget the book (it will be rebuilt from the next snapshot)."""
        if self.synced:
            self.resyncs += 1
        self.bids.clear()
        self.asks.clear()
        self.texts.clear()
        self.last_seq = None
        self.synced = False
        self.last_problem = problem

    def apply(self, update: WsBook) -> bool:
        """Apply a snapshot or delta; False (and unsynced) when the book cannot be trusted."""
        protocol = self.source.book_protocol
        if update.snapshot:
            self.bids.clear()
            self.asks.clear()
            self.texts.clear()
            self._levels(update)
            self.last_seq = update.last_seq
            self.last_ts = update.ts
            self.synced = True
            self.first_delta = protocol.sync is BookSync.REST_SNAPSHOT
            return self._verify(update)
        if not self.synced:
            return False
        verdict = self.source.check_book_sequence(self.last_seq, update, first=self.first_delta)
        if verdict is SeqCheck.STALE:
            return True
        if verdict is SeqCheck.GAP:
            self.reset(f"sequence gap: book at {self.last_seq}, update {update.first_seq}-"
                       f"{update.last_seq} (prev {update.prev_seq})")
            return False
        self.first_delta = False
        self._levels(update)
        if update.last_seq is not None:
            self.last_seq = update.last_seq
        self.last_ts = max(self.last_ts, update.ts)
        return self._verify(update)

    def _levels(self, update: WsBook) -> None:
        self._apply_levels(update)
        if self.max_depth is not None:
            self._truncate(self.max_depth)

    def _truncate(self, depth: int) -> None:
        """Drop the levels beyond ``depth`` a side (worst first), with their texts."""
        for side, book, worst in (("bid", self.bids, heapq.nsmallest),
                                  ("ask", self.asks, heapq.nlargest)):
            extra = len(book) - depth
            if extra > 0:
                for price in worst(extra, book):
                    del book[price]
                    self.texts.pop((side, price), None)

    def _apply_levels(self, update: WsBook) -> None:
        keep_texts = self.source.book_protocol.checksum
        for side, book, levels, texts in (
            ("bid", self.bids, update.bids, update.bid_texts),
            ("ask", self.asks, update.asks, update.ask_texts),
        ):
            for i, (price, amount) in enumerate(levels):
                if amount == 0.0:
                    book.pop(price, None)
                    if keep_texts:
                        self.texts.pop((side, price), None)
                else:
                    book[price] = amount
                    if keep_texts and texts is not None:
                        self.texts[(side, price)] = texts[i]

    def _verify(self, update: WsBook) -> bool:
        protocol = self.source.book_protocol
        if protocol.checksum and update.checksum is not None:
            n = protocol.checksum_depth or 25
            bids = [self._text("bid", p) for p in heapq.nlargest(n, self.bids)]
            asks = [self._text("ask", p) for p in heapq.nsmallest(n, self.asks)]
            if self.source.book_checksum(bids, asks) != update.checksum:
                self.reset("checksum mismatch")
                return False
        return True

    def _text(self, side: str, price: float) -> tuple[str, str]:
        found = self.texts.get((side, price))
        if found is not None:
            return found
        book = self.bids if side == "bid" else self.asks
        return (repr(price), repr(book[price]))

    def top(self, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best ``depth`` levels per side, best first."""
        bids = [(p, self.bids[p]) for p in heapq.nlargest(depth, self.bids)]
        asks = [(p, self.asks[p]) for p in heapq.nsmallest(depth, self.asks)]
        return bids, asks

    def crossed(self) -> bool:
        """Best bid >= best ask: the book is wrong (a missed delete), never stored."""
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


def book_frame(
    ts: int, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]]
) -> pl.DataFrame:
    """A snapshot in the book schema: ``level`` 0 is the best price of each side."""
    n_b, n_a = len(bids), len(asks)
    return pl.DataFrame(
        {
            "ts": [ts] * (n_b + n_a),
            "side": ["bid"] * n_b + ["ask"] * n_a,
            "level": list(range(n_b)) + list(range(n_a)),
            "price": [p for p, _ in bids] + [p for p, _ in asks],
            "amount": [a for _, a in bids] + [a for _, a in asks],
        },
        schema=_BOOK_SCHEMA,
    )
