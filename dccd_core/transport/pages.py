"""What the paginators need from a source: one page at a time, and its answer's shape.

The paginators live in the transport layer and must not know the sources package
(dependencies point pipelines -> operations -> sources/storage -> transport -> domain),
so they name the part of a source they drive as a Protocol here; every
``dccd_core.sources.Source`` satisfies it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import polars as pl

from dccd_core.domain import Capability, DataType, Span, Symbol

__all__ = ["IdAddressedPages", "PageSource", "TradePage"]


@dataclass(frozen=True, slots=True)
class TradePage:
    """One page of trades and where the next one starts (None: window drained).

    Where each row bundles a range of the exchange's underlying trades (Binance
    aggregates: trades ``f..l``), ``first_trade_ids`` gives each row's first underlying
    trade id and ``last_trade_id`` the highest one the page delivered; the paginator
    then drops the rows of the next page that only re-send trades this page delivered
    (a replay at a page boundary). ``replayed`` lists the ids of rows the source dropped
    as replays: the consecutive-id checks count them as seen, nothing stores them.
    """

    rows: pl.DataFrame
    next_cursor: object | None
    requests: int = 1
    replayed: tuple[str, ...] = ()
    first_trade_ids: pl.Series | None = None
    last_trade_id: int | None = None


class PageSource(Protocol):
    """The page-level face of an exchange source (see ``dccd_core.sources.base``)."""

    @property
    def id(self) -> str: ...

    @property
    def capability(self) -> Capability: ...

    @property
    def sequential_trade_ids(self) -> bool: ...

    @property
    def monotonic_trade_ids(self) -> bool: ...

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame: ...

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: object | None
    ) -> TradePage: ...

    async def fetch_funding(self, symbol: Symbol, start_ts: int, end_ts: int) -> pl.DataFrame: ...

    def span_page(self, data_type: DataType) -> Callable[..., Awaitable[pl.DataFrame]]: ...


@runtime_checkable
class IdAddressedPages(Protocol):
    """A source that can ask for the page starting at a trade id (Binance ``fromId``).

    Where ``sequential_trade_ids`` holds too, the trade paginator pages such a source
    by id blocks instead of by time (``dccd_core.transport.paginate.trades_by_id``).
    """

    def cursor_at_trade_id(self, trade_id: int) -> object: ...
