"""A backfill that fails says so once; one that runs says how far it is.

Synthetic in-memory sources (no server): pages fail, stall or lie on purpose.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from typing import Any, ClassVar

import polars as pl
import pytest

from dccd_core.domain import (
    NS_PER_S,
    Capability,
    DatasetKey,
    DataType,
    ExchangeError,
    Feature,
    PageDirection,
    Span,
    Symbol,
    Transport,
    UnexpectedPayload,
    to_ns,
)
from dccd_core.operations.backfill import BackfillProgress, backfill
from dccd_core.sources.base import Endpoints, Source
from dccd_core.storage import Store
from dccd_core.transport.pages import TradePage
from dccd_pipelines.execution import format_progress
from tests.core.storage.helpers import trades

START = to_ns("2024-03-01")
SYMBOL = Symbol.parse("BTC/USDT")


def trades_frame(ids: list[int], ts: list[int]) -> pl.DataFrame:
    return trades([str(i) for i in ids], ts, price=100.0)


class Synthetic(Source):
    """One in-memory exchange: candles every minute, a trade every second."""

    id: ClassVar[str] = "synthetic"
    default_endpoints: ClassVar[Endpoints] = Endpoints("http://synthetic")

    def __init__(
        self,
        *,
        fail_from_page: int | None = None,
        direction: PageDirection = PageDirection.FORWARD,
        page_limit: int = 60,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__(None)
        self.capability = Capability(
            "synthetic",
            (
                Feature(DataType.OHLC, Transport.REST, page_limit=10, spans=(Span.parse("1m"),)),
                Feature(
                    DataType.TRADES, Transport.REST, page_limit=page_limit, direction=direction
                ),
            ),
        )
        self.fail_from_page = fail_from_page
        self.direction = direction
        self.page_limit = page_limit
        self.delay_s = delay_s
        self.calls = 0

    def native_symbol(self, symbol: Symbol) -> str:
        return str(symbol)

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.fail_from_page is not None and self.calls >= self.fail_from_page:
            raise ExchangeError(f"synthetic refused page {self.calls}: bad parameter")

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        self._maybe_fail()
        ts = list(range(start_ts, end_ts, span.ns))
        one = [1.0] * len(ts)
        return pl.DataFrame(
            {"ts": ts, "open": one, "high": one, "low": one, "close": one, "volume": one}
        )

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """A trade each second, id = seconds since START; cursor = the next id (forward)
        or the id below the page (backward)."""
        await asyncio.sleep(self.delay_s)
        self._maybe_fail()
        first_id = (start_ts - START) // NS_PER_S
        last_id = (end_ts - 1 - START) // NS_PER_S
        if self.direction is PageDirection.FORWARD:
            lo = first_id if cursor is None else int(cursor)
            hi = min(lo + self.page_limit, last_id + 1)
            nxt = hi if hi <= last_id else None
        else:
            hi = last_id + 1 if cursor is None else int(cursor)
            lo = max(hi - self.page_limit, first_id)
            nxt = lo if lo > first_id else None
        ids = list(range(lo, hi))
        return TradePage(trades_frame(ids, [START + i * NS_PER_S for i in ids]), nxt)


def _key(data_type: str, span: str | None = None) -> DatasetKey:
    return DatasetKey.of("synthetic", "BTC/USDT", data_type, span)


# -- one clear error, no orphaned page tasks -------------------------------------------


@pytest.mark.parametrize("data_type", ["ohlc", "trades"])
def test_a_failed_backfill_leaves_no_unretrieved_task_exception(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, data_type: str
) -> None:
    # page 2 and every later one fail while look-ahead pages are in flight
    source = Synthetic(fail_from_page=2, page_limit=60)
    span = "1m" if data_type == "ohlc" else None
    end = START + 4 * 3600 * NS_PER_S
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ExchangeError, match="synthetic refused page"):
        asyncio.run(
            backfill(
                _key(data_type, span),
                start=START,
                end=end,
                store=Store(tmp_path),
                source=source,
                concurrency=6,
            )
        )
    gc.collect()
    assert source.calls > 2  # look-ahead pages were in flight and failed too
    # the one error is the raised one: nothing logged as an error, no traceback
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert noisy == []
    assert "Traceback" not in caplog.text and "never retrieved" not in caplog.text


# -- progress rises with the time covered ---------------------------------------------


class SyntheticById(Synthetic):
    """The same exchange, addressable by consecutive trade id (Binance ``fromId``)."""

    sequential_trade_ids: ClassVar[bool] = True

    def cursor_at_trade_id(self, trade_id: int) -> int:
        return trade_id


def _percent(line: str) -> float:
    match = re.search(r"([0-9.]+)%", line)
    assert match, line
    return float(match.group(1))


@pytest.mark.parametrize("mode", ["forward", "backward", "by_id"])
def test_trades_progress_rises_with_time_covered(tmp_path: Any, mode: str) -> None:
    """A trades window is one paging window: its percentage must still rise page by
    page (forward, newest-first and by id), not jump from 0 to 100 at the end."""
    direction = PageDirection.BACKWARD if mode == "backward" else PageDirection.FORWARD
    kind = SyntheticById if mode == "by_id" else Synthetic
    source = kind(direction=direction, page_limit=600, delay_s=0.004)
    end = START + 4 * 3600 * NS_PER_S  # 14,400 trades: 24 pages
    reports: list[BackfillProgress] = []
    result = asyncio.run(
        backfill(
            _key("trades"),
            start=START,
            end=end,
            store=Store(tmp_path),
            source=source,
            progress=reports.append,
            progress_interval_s=0.001,
            concurrency=1,
        )
    )
    assert result.rows_fetched == 14_400
    percents = [_percent(format_progress(r)) for r in reports]
    assert percents == sorted(percents)  # never goes back
    assert percents[-1] == 100.0
    during = sorted({p for p in percents if 0.0 < p < 100.0})
    assert len(during) >= 5, percents  # rose step by step before the end
    assert [r.fraction for r in reports] == sorted(r.fraction for r in reports)


# -- ids rising while times fall: refused, never stored ------------------------------


class Inverted(Synthetic):
    """An exchange whose ids grow with time, answering one implausible page: on page
    ``bad_page``, trade ``swap_id`` is dated ``back_s`` seconds earlier."""

    monotonic_trade_ids: ClassVar[bool] = True

    def __init__(self, bad_page: int, swap_id: int, back_s: int) -> None:
        super().__init__(page_limit=600)
        self.bad_page, self.swap_id, self.back_s = bad_page, swap_id, back_s

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        page = await super().fetch_trades_page(symbol, start_ts, end_ts, cursor)
        if self.calls != self.bad_page:
            return page
        back = pl.when(pl.col("trade_id") == str(self.swap_id))
        rows = page.rows.with_columns(
            back.then(pl.col("ts") - self.back_s * NS_PER_S).otherwise(pl.col("ts")).alias("ts")
        )
        return TradePage(rows, page.next_cursor)


def _backfill_an_hour(store: Store, source: Inverted, **kwargs: Any) -> None:
    asyncio.run(
        backfill(
            _key("trades"), start=START, end=START + 3600 * NS_PER_S, store=store, source=source,
            **kwargs,
        )
    )  # fmt: skip


def test_a_page_whose_ids_rise_while_times_fall_is_refused_and_nothing_stored(
    tmp_path: Any,
) -> None:
    # trade 300 dated before trade 299 (and others) on the first page
    store = Store(tmp_path)
    with pytest.raises(UnexpectedPayload) as caught:
        _backfill_an_hour(store, Inverted(bad_page=1, swap_id=300, back_s=10))
    message = str(caught.value)
    assert message.startswith("synthetic: trades page rejected")
    assert "trade 300 at 2024-03-01T00:04:50Z is dated before trade 299 at" in message
    assert "nothing from this page was stored" in message
    assert store.read(_key("trades")).height == 0


def test_a_page_dated_before_the_previous_one_is_refused_at_the_seam(tmp_path: Any) -> None:
    # page 2 (ids 600..1199) is plausible alone, but its first trade is dated 20 s
    # before the last trades of page 1: caught across the seam, page 2 never stored
    store = Store(tmp_path)
    with pytest.raises(UnexpectedPayload, match=r"trade 600 at .* is dated before trade 599"):
        _backfill_an_hour(store, Inverted(bad_page=2, swap_id=600, back_s=20), concurrency=1)
    stored = store.read(_key("trades"))
    assert "600" not in stored.get_column("trade_id").to_list()


def test_which_exchanges_declare_ids_growing_with_time() -> None:
    from dccd_core.sources.registry import source_class

    declared = {
        ex: source_class(ex)[0].monotonic_trade_ids
        for ex in ("binance", "bitfinex", "bitmex", "bybit", "coinbase", "kraken", "okx")
    }
    assert declared == {
        "binance": True,  # aggregate ids, consecutive
        "bitfinex": True,
        "bitmex": False,  # trdMatchID is a UUID
        "bybit": False,  # execId is a UUID
        "coinbase": True,
        "kraken": True,
        "okx": True,
    }


def test_a_cancelled_backfill_leaves_no_page_task_behind(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # shutdown: the run is cancelled while look-ahead pages are in flight
    source = Synthetic(page_limit=60, delay_s=0.01)

    async def run_then_cancel() -> None:
        task = asyncio.create_task(
            backfill(
                _key("trades"),
                start=START,
                end=START + 4 * 3600 * NS_PER_S,
                store=Store(tmp_path),
                source=source,
                concurrency=6,
            )
        )
        while source.calls < 10:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    caplog.set_level(logging.DEBUG)
    asyncio.run(run_then_cancel())
    gc.collect()
    noise = [
        r.getMessage()
        for r in caplog.records
        if "never retrieved" in r.getMessage() or "destroyed but it is pending" in r.getMessage()
    ]
    assert noise == []
