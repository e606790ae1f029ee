"""Binance re-sent aggregates (ccxt issue #8329) against the fake Binance.

``GET /api/v3/aggTrades?symbol=BTCUSDT&fromId=1195414&limit=3`` answers a=1195414
(f=l=1291817), a=1195415 (f=l=1291818) and a=1195416 (f=l=1291817, the time, price and
size of a=1195414): an aggregate whose trades an earlier one already delivered. It is
dropped (no new trade), wherever it falls: mid-page, first row of a page (its original
on the page before, fetched concurrently), last row of a page. An aggregate that is no
replay but is dated back in time stays refused.
"""

from __future__ import annotations

import logging
import re
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
import pytest

from dccd_core.domain import (
    NS_PER_MS,
    DatasetKey,
    PagingStalled,
    Symbol,
    UnexpectedPayload,
    to_ns,
)
from dccd_core.operations.backfill import backfill
from dccd_core.sources.binance import BinanceSource
from dccd_core.sources.registry import build_source
from dccd_core.storage import Store
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.kit import fast_source_on

LISTING_MS = to_ns("2024-01-01") // NS_PER_MS
KEY = DatasetKey.of("binance", "BTC/USDT", "trades", None)
SPOT = Symbol.parse("BTC/USDT")

#: replayed aggregate k -> the earlier aggregate k it copies (k = a - 1000 in the fake).
#: Pages: the first by time holds k 0..999, then blocks of 1000 ids by ``fromId``.
REPLAYS = {
    2502: 2500,  # mid-page, two after its original (the ccxt #8329 shape)
    4000: 3998,  # first row of a page, its original on the page before
    6000: 5999,  # first row of a page, a copy of the last row of the page before
    7999: 7997,  # last row of a page
}


def _fake(**market: Any) -> FakeBinance:
    data = MarketData(7, LISTING_MS, **market)
    return FakeBinance(markets={("spot", "BTCUSDT"): data}, weight_limit=10**9)


def _binance(fake: FakeBinance) -> AbstractAsyncContextManager[BinanceSource]:
    return fast_source_on("binance", fake.app())


def _window() -> tuple[int, int]:
    start = LISTING_MS * NS_PER_MS
    return start, start + 1_200_000 * NS_PER_MS  # ~12k aggregates at 10/s


@pytest.mark.parametrize(
    "replays", [REPLAYS, {4000: 3998}], ids=["everywhere", "page-boundary-only"]
)
async def test_replayed_aggregates_dropped_backfill_equals_truth(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, replays: dict[int, int]
) -> None:
    fake = _fake(replays=replays)
    store = Store(tmp_path)
    start, end = _window()
    with caplog.at_level(logging.INFO):
        async with _binance(fake) as source:
            result = await backfill(KEY, start=start, end=end, store=store, source=source)
    truth = fake.truth_trades(start, end)
    stored = store.read(KEY)
    replay_ids = {str(k + 1000) for k in replays}
    assert truth.height > 10_000 and not replay_ids & set(truth.get_column("trade_id"))
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))
    assert result.rows_new == truth.height
    assert store.coverage(KEY).covers(start, end)
    # every replay is named in a log line, once (the source's within a page, the
    # paginator's at a page boundary)
    named: list[str] = []
    for record in caplog.records:
        message = record.getMessage()
        named += re.findall(r"\ba=(\d+) \(trades", message)
        if boundary := re.search(r"replayed trade\(s\) ([\d, ]+) at a page boundary", message):
            named += boundary.group(1).split(", ")
    assert sorted(named) == sorted(replay_ids)


@pytest.mark.parametrize(
    ("backdated", "where"),
    [({2502: 5_000}, "mid-page"), ({4000: 5_000}, "first row of a page")],
)
async def test_backdated_aggregate_that_is_no_replay_still_refused(
    tmp_path: Any, backdated: dict[int, int], where: str
) -> None:
    """New trades (a range no aggregate delivered) dated 5 s early: garbage, refused."""
    fake = _fake(replays={7999: 7997}, backdated_ms=backdated)
    start, end = _window()
    async with _binance(fake) as source:
        with pytest.raises(UnexpectedPayload, match="id rising while its time falls"):
            await backfill(KEY, start=start, end=end, store=Store(tmp_path), source=source)


def _agg(a: int, f: int, t: int, p: str = "1.5", q: str = "0.2") -> dict[str, Any]:
    return {"a": a, "p": p, "q": q, "f": f, "l": f, "T": t, "m": False, "M": True}


def test_parse_drops_replay_inside_a_page() -> None:
    """Made-up values of the ccxt #8329 shape, ids as strings like ccxt's recordings."""
    from dccd_core.sources.binance.parse import parse_trades_page

    t = 1_600_000_000_000
    rows = [_agg(500, 900, t), _agg(501, 901, t + 932), _agg(502, 900, t), _agg(503, 902, t + 990)]
    rows[0]["a"] = "500"
    page = parse_trades_page(rows)
    assert page.rows.get_column("trade_id").to_list() == ["500", "501", "503"]
    assert page.replayed == ("502",)
    assert page.first_trade_ids is not None and page.first_trade_ids.to_list() == [900, 901, 902]
    assert (page.last_trade_id, page.last_agg_id, page.received) == (902, 503, 4)
    # the same aggregate first in its payload: a replay only given the earlier page's l
    assert parse_trades_page(rows[2:]).replayed == ()
    assert parse_trades_page(rows[2:], after_trade_id=901).replayed == ("502",)


async def test_source_page_with_replay_is_full_and_not_refused() -> None:
    """A full page holding a replay (whose time is before its predecessor's) passes the
    id/time check and still continues by id; a genuine inversion is refused."""
    t0 = 1_704_067_200_000
    rows = [_agg(10 + i, 100 + i, t0 + 10 * i) for i in range(1000)]
    rows[500] = _agg(510, 100 + 498, t0 + 10 * 498)  # replay of a=508
    bad = [_agg(10 + i, 100 + i, t0 + 10 * i) for i in range(1000)]
    bad[500]["T"] = t0  # new trades, dated back: not a replay
    pages = {"good": rows, "bad": bad}
    which = ["good"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=orjson.dumps(pages[which[0]]))

    source = build_source(
        "binance", rest_url="http://fake.test", transport=httpx.MockTransport(handler)
    )
    end = (t0 + 10**8) * NS_PER_MS
    try:
        page = await source.fetch_trades_page(SPOT, t0 * NS_PER_MS, end, ("id", 10))
        assert page.rows.height == 999 and page.replayed == ("510",)
        assert page.next_cursor == ("id", 1010)
        which[0] = "bad"
        with pytest.raises(UnexpectedPayload, match="id rising while its time falls"):
            await source.fetch_trades_page(SPOT, t0 * NS_PER_MS, end, ("id", 10))
    finally:
        await source.aclose()


def test_stream_drops_replays_within_and_across_batches() -> None:
    """The aggTrade stream shares the parser: a replay is dropped in its batch and in a
    later batch than its original (the stream's dedup by id could not: ids differ)."""
    from dccd_core.domain import DataType
    from dccd_core.sources.ws import WsSubscription, WsTrades

    source = build_source("binance", rest_url="http://fake.test", ws_url="ws://fake.test")
    source.ws_url(WsSubscription(DataType.TRADES, (SPOT,)))  # type: ignore[attr-defined]
    t = 1_704_067_200_000

    def frame(agg: dict[str, Any]) -> bytes:
        data = {"e": "aggTrade", "E": agg["T"] + 1, "s": "BTCUSDT", **agg}
        return orjson.dumps({"stream": "btcusdt@aggTrade", "data": data})

    def ids(batch: list[bytes]) -> list[str]:
        events = source.parse_ws_messages(batch)  # type: ignore[attr-defined]
        assert all(isinstance(e, WsTrades) for e in events)
        return [i for e in events for i in e.rows.get_column("trade_id").to_list()]

    first = [frame(_agg(500, 900, t)), frame(_agg(501, 901, t + 932))]
    assert ids(first) == ["500", "501"]
    # a=502 replays a=500 (delivered in the batch before), a=504 replays a=503
    second = [frame(_agg(502, 900, t)), frame(_agg(503, 902, t + 990)), frame(_agg(504, 902, t))]
    assert ids(second) == ["503"]
    assert ids([frame(_agg(505, 903, t + 1000))]) == ["505"]


async def test_paginator_counts_replays() -> None:
    from dccd_core.transport.paginate import PageStats, paginate_trades

    fake = _fake(replays=REPLAYS)
    start, end = _window()
    stats = PageStats()
    async with _binance(fake) as source:
        chunks = [c async for c in paginate_trades(source, SPOT, start, end, stats=stats)]
    assert stats.replayed == len(REPLAYS)
    assert sum(c.rows.height for c in chunks) == fake.truth_trades(start, end).height


def test_a_row_or_page_sent_twice_is_no_replay() -> None:
    """A replay has a new aggregate id: a repeated id (row or page) is left to the id
    checks, which refuse it, instead of being dropped as a replay."""
    from dccd_core.sources.binance.parse import parse_trades_page

    t = 1_600_000_000_000
    rows = [_agg(500, 900, t), _agg(501, 901, t + 5), _agg(501, 901, t + 5)]
    assert parse_trades_page(rows).replayed == ()
    again = parse_trades_page(rows[:2], after_trade_id=901, after_agg_id=501)
    assert again.replayed == () and again.rows.height == 2


async def test_an_id_page_served_twice_is_still_refused(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Blocks of ids answered with the block before: their trades were delivered, but
    their ids too, so the backfill is refused, no row dropped as a replay."""
    fake = _fake(replays={2502: 2500})
    original = fake.market().agg_body

    def first_block_again(k: Any) -> bytes:
        return original(k - 1000 if int(k[0]) >= 3000 else k)

    fake.market().agg_body = first_block_again  # type: ignore[method-assign]
    start, end = _window()
    async with _binance(fake) as source:
        with pytest.raises((UnexpectedPayload, PagingStalled)):
            await backfill(KEY, start=start, end=end, store=Store(tmp_path), source=source)
    assert not [r for r in caplog.records if "page boundary" in r.getMessage()]


def test_paginator_drops_only_new_ids_with_old_trades() -> None:
    import polars as pl

    from dccd_core.transport.pages import TradePage
    from dccd_core.transport.paginate import _Replays

    def page(ids: list[int], first: list[int]) -> TradePage:
        rows = pl.DataFrame(
            {
                "ts": [1_700_000_000_000_000_000 + i for i in ids],
                "trade_id": [str(i) for i in ids],
                "price": [1.0] * len(ids),
                "amount": [1.0] * len(ids),
                "side": ["buy"] * len(ids),
            }
        )
        return TradePage(rows, None, first_trade_ids=pl.Series(first), last_trade_id=max(first))

    replays = _Replays(build_source("binance", rest_url="http://fake.test"), SPOT)
    rows, replayed = replays.apply(page([10, 11, 12], [100, 101, 102]))
    assert (rows.height, replayed) == (3, ())
    rows, replayed = replays.apply(page([12, 13], [102, 103]))  # a row sent twice
    assert (rows.height, replayed) == (2, ())
    rows, replayed = replays.apply(page([14, 15], [101, 104]))  # 14 replays 11
    assert rows.get_column("trade_id").to_list() == ["15"] and replayed == ("14",)
