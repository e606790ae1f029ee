"""Checks on trade ids across pages and seams: no gap, no replay, no order reversal.

Pages are fetched concurrently, so what one page cannot see alone (an id jump at a
seam, a replayed aggregate whose original was on the page before, ids rising while
times fall between two pages) is checked here, in the order chunks are yielded. Shared
by both trade paging modes, hence a module of its own.
"""

from __future__ import annotations

import logging

import polars as pl

from dccd_core.domain import IdEdges, Symbol, UnexpectedPayload, check_trade_id_order

from ..pages import PageSource, TradePage

__all__ = ["IdContinuity", "IdOrder", "Replays"]

log = logging.getLogger("dccd_core.transport.paginate")


class IdContinuity:
    """Proves that consecutive integer trade ids have no gap across pages and seams."""

    def __init__(self, exchange: str, symbol: Symbol) -> None:
        self.last_id: int | None = None
        self.exchange = exchange
        self.symbol = symbol

    def check(self, rows: pl.DataFrame, replayed: tuple[str, ...] = ()) -> None:
        if replayed:
            self._check_with_replays(rows, replayed)
            return
        if rows.height == 0:
            return
        ids = rows.get_column("trade_id").cast(pl.Int64, strict=False)
        first, last = ids[0], ids[-1]
        if ids.null_count() or first is None or last is None:
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: non-integer trade ids from a source "
                "that declares sequential ids"
            )
        # sorted + distinct + (last - first == n - 1)  <=>  consecutive
        contiguous = (
            last - first == rows.height - 1 and ids.is_sorted() and ids.n_unique() == rows.height
        )
        if self.last_id is not None and first <= self.last_id:
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: trade ids went back (expected "
                f"{self.last_id + 1}, got {first}..{last}): the exchange repeated or "
                "reordered a page; nothing from it was stored, re-run the backfill"
            )
        if not contiguous or (self.last_id is not None and first != self.last_id + 1):
            expected = "?" if self.last_id is None else str(self.last_id + 1)
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: gap in trade ids (expected {expected}, "
                f"got {first}..{last} in {rows.height} rows); refusing to store an "
                "incomplete range, re-run the backfill"
            )
        self.last_id = int(last)

    def _check_with_replays(self, rows: pl.DataFrame, replayed: tuple[str, ...]) -> None:
        """As ``check``, the ids of rows dropped as replays counting as seen (they were
        sent, in sequence; only their trades had been delivered already)."""
        skipped = {int(i) for i in replayed}
        ids = rows.get_column("trade_id").cast(pl.Int64, strict=False)
        if ids.null_count():
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: non-integer trade ids from a source "
                "that declares sequential ids"
            )
        got = [int(i) for i in ids.to_list()]
        if self.last_id is not None:
            expected = self.last_id + 1
        elif got:
            expected = got[0]
        else:
            expected = min(skipped)
        while expected in skipped:
            expected += 1
        if got and got[0] < expected and self.last_id is not None:
            raise UnexpectedPayload(
                f"{self.exchange} {self.symbol}: trade ids went back (expected "
                f"{expected}, got {got[0]}..{got[-1]}): the exchange repeated or "
                "reordered a page; nothing from it was stored, re-run the backfill"
            )
        for trade_id in got:
            if trade_id != expected:
                raise UnexpectedPayload(
                    f"{self.exchange} {self.symbol}: gap in trade ids (expected {expected}, "
                    f"got {got[0]}..{got[-1]} in {rows.height} rows); refusing to store an "
                    "incomplete range, re-run the backfill"
                )
            expected += 1
            while expected in skipped:
                expected += 1
        self.last_id = expected - 1


class Replays:
    """Drops, in the order pages are yielded, the rows of a page that only re-send
    underlying trades an earlier page delivered (pages that carry
    ``first_trade_ids``/``last_trade_id``, e.g. Binance aggregates ``f..l``). The source
    drops such rows inside one page; a replay whose original is on the page before
    can only be seen here, as pages are fetched concurrently."""

    def __init__(self, source: PageSource, symbol: Symbol) -> None:
        self.origin = f"{source.id} {symbol}"
        #: the highest underlying trade id and row id delivered by the pages so far
        self.high: int | None = None
        self.high_id: int | None = None

    def apply(self, page: TradePage) -> tuple[pl.DataFrame, tuple[str, ...]]:
        """The page's rows without replays, and every replayed id (the source's too).

        A replay has a new row id (above every id delivered before) with old trades: a
        row, or a page, sent twice keeps its ids and is left to the id checks."""
        rows, replayed, first = page.rows, page.replayed, page.first_trade_ids
        ids = rows.get_column("trade_id").cast(pl.Int64, strict=False)
        if (
            first is not None
            and self.high is not None
            and self.high_id is not None
            and rows.height == first.len()
        ):
            mask = ((first <= self.high) & (ids > self.high_id)).fill_null(False)
            if mask.any():
                dropped = tuple(rows.get_column("trade_id").filter(mask).to_list())
                log.warning(
                    "%s: dropped %d replayed trade(s) %s at a page boundary: their "
                    "trades (up to id %d) were already delivered by the page before",
                    self.origin,
                    len(dropped),
                    ", ".join(dropped[:10]),
                    self.high,
                )
                rows = rows.filter(~mask)
                replayed = replayed + dropped
        if page.last_trade_id is not None:
            high = page.last_trade_id
            self.high = high if self.high is None else max(self.high, high)
        tops = [int(i) for i in replayed]
        if ids.drop_nulls().len():
            tops.append(int(ids.max()))  # type: ignore[arg-type]
        if tops:
            top = max(tops)
            self.high_id = top if self.high_id is None else max(self.high_id, top)
        return rows, replayed


class IdOrder:
    """Carries ``check_trade_id_order`` across the chunks of a walk, in the order they
    are yielded, so a seam between pages whose ids rise while their times fall is
    refused like a page that does (sources with ``monotonic_trade_ids`` only)."""

    def __init__(self, source: PageSource, symbol: Symbol) -> None:
        self.on = source.monotonic_trade_ids
        self.origin = f"{source.id} {symbol}"
        self.edges: IdEdges | None = None

    def check(self, rows: pl.DataFrame) -> None:
        if self.on:
            self.edges = check_trade_id_order(rows, origin=self.origin, edges=self.edges)
