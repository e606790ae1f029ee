"""LiveBook keeps only the subscribed depth where the protocol says so (Kraken).

Kraken's book guide: after each update truncate the book to the subscribed depth, as
no ``qty: 0`` is sent for a level that falls out of scope. The scenario below is the
one that breaks without it: a level is pushed out, vanishes while out of range, and
a later refill would otherwise leave the stale level inside the checksummed top 10.
"""

from __future__ import annotations

from dccd_core.domain import Symbol
from dccd_core.operations.book import LiveBook
from dccd_core.sources.base import Endpoints
from dccd_core.sources.kraken import KrakenSource
from dccd_core.sources.kraken.checksum import book_checksum
from dccd_core.sources.ws import WsBook

BTC_USD = Symbol("BTC", "USD")
DEPTH = 10

Levels = dict[str, str]  # price text -> qty text


def _top(levels: Levels, bids: bool) -> list[tuple[str, str]]:
    prices = sorted(levels, key=float, reverse=bids)[:DEPTH]
    return [(p, levels[p]) for p in prices]


def _message(
    truth_bids: Levels, truth_asks: Levels, bids: list[tuple[str, str]], *, snapshot: bool
) -> WsBook:
    asks = _top(truth_asks, bids=False) if snapshot else []
    checksum = book_checksum(_top(truth_bids, bids=True), _top(truth_asks, bids=False))
    return WsBook(
        symbol=BTC_USD,
        ts=1,
        snapshot=snapshot,
        bids=[(float(p), float(q)) for p, q in bids],
        asks=[(float(p), float(q)) for p, q in asks],
        checksum=checksum,
        bid_texts=bids,
        ask_texts=asks,
    )


def _replay(book: LiveBook) -> list[bool]:
    """Snapshot, an insert that pushes the 10th bid out, its silent removal, a refill."""
    bids = {f"{100 - k}.0": "1.00000000" for k in range(1, 13)}  # 99.0 .. 88.0
    asks = {f"{100 + k}.0": "1.00000000" for k in range(1, 13)}
    results = [book.apply(_message(bids, asks, _top(bids, bids=True), snapshot=True))]
    # insert 95.5: 90.0 leaves the top 10, Kraken sends no delete for it
    bids["95.5"] = "2.00000000"
    results.append(book.apply(_message(bids, asks, [("95.5", "2.00000000")], snapshot=False)))
    # 90.0 disappears while out of range: no message at all
    del bids["90.0"]
    # 99.0 is deleted: Kraken sends the delete and the level that refills the range (89.0)
    del bids["99.0"]
    refill = [("99.0", "0"), ("89.0", "1.00000000")]
    results.append(book.apply(_message(bids, asks, refill, snapshot=False)))
    return results


def source() -> KrakenSource:
    return KrakenSource(None, Endpoints("http://127.0.0.1:1", "ws://127.0.0.1:1"))


def test_kraken_declares_truncation() -> None:
    assert source().book_protocol.truncate_to_depth


def test_truncated_book_matches_every_checksum() -> None:
    book = LiveBook(source(), max_depth=DEPTH)
    assert _replay(book) == [True, True, True]
    assert book.synced and len(book.bids) == DEPTH
    assert 90.0 not in book.bids and 89.0 in book.bids
    assert ("bid", 90.0) not in book.texts


def test_untruncated_book_keeps_a_stale_level_and_fails_the_checksum() -> None:
    book = LiveBook(source())  # no max_depth: the stale 90.0 comes back into the top 10
    assert _replay(book) == [True, True, False]
    assert not book.synced and book.last_problem == "checksum mismatch"
