"""BitMEX realtime API: pure frame parsing, the level-id book, and operations.stream."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, DataType, Span, Symbol, to_ns
from dccd_core.domain.errors import ExchangeError, NoCapability, UnexpectedPayload
from dccd_core.operations.book import LiveBook
from dccd_core.operations.stream import FlushReport
from dccd_core.sources.bitmex import BitmexSource
from dccd_core.sources.bitmex import parse as mex
from dccd_core.sources.ws import (
    WsBook,
    WsCandles,
    WsIgnore,
    WsPing,
    WsSubscription,
    WsTrades,
)
from dccd_core.storage import Store
from tests.fakes.bitmex_ws import BitmexStreamFake
from tests.fakes.kit import feed, stream_on

XBTUSD = Symbol.parse("BTC/USD:BTC")
TRADE = {
    "timestamp": "2024-01-01T00:00:06.384Z",
    "symbol": "XBTUSD",
    "side": "Sell",
    "size": 2500,
    "price": 66480.5,
    "tickDirection": "ZeroMinusTick",
    "trdMatchID": "00000000-006d-1000-0000-0004c1f2a917",
    "grossValue": 3760500,
    "homeNotional": 0.037605,
    "foreignNotional": 2500,
    "trdType": "Regular",
}
BIN = {
    "timestamp": "2024-01-01T00:01:00.000Z",
    "symbol": "XBTUSD",
    "open": 66471.0,
    "high": 66502.5,
    "low": 66455.0,
    "close": 66480.5,
    "trades": 31,
    "volume": 94120,
    "homeNotional": 1.41582106,
    "foreignNotional": 94120,
}


def source() -> BitmexSource:
    return BitmexSource(http=None)


def level(level_id: int, side: str, size: int | None = None, price: float | None = None) -> dict:
    row: dict[str, object] = {"symbol": "XBTUSD", "id": level_id, "side": side}
    if size is not None:
        row["size"] = size
    if price is not None:
        row["price"] = price
    return row


def book_msg(action: str, *rows: dict) -> dict:
    return {"table": "orderBookL2_25", "action": action, "data": list(rows)}


# -- connecting -----------------------------------------------------------------------


def test_url_subscribes_every_topic() -> None:
    src = source()
    linear = Symbol.parse("BTC/USDT:USDT")
    trades = WsSubscription(DataType.TRADES, (XBTUSD, linear))
    assert src.ws_url(trades) == (
        "wss://ws.bitmex.com/realtime?subscribe=trade:XBTUSD,trade:XBTUSDT"
    )
    bins = WsSubscription(DataType.OHLC, (XBTUSD,), Span.parse("5m"))
    assert src.ws_url(bins).endswith("?subscribe=tradeBin5m:XBTUSD")
    book = WsSubscription(DataType.BOOK, (XBTUSD,), book_depth=10)
    assert src.ws_url(book).endswith("?subscribe=orderBookL2_25:XBTUSD")
    assert src.ws_ping is not None and src.ws_ping.message == "ping"
    assert src.ws_ping.interval_s == 5.0
    with pytest.raises(NoCapability, match=r"1m 5m 1h 1d.*derive candles from trades"):
        src.ws_url(WsSubscription(DataType.OHLC, (XBTUSD,), Span.parse("15m")))
    with pytest.raises(NoCapability, match="book_depth <= 25"):
        src.ws_url(WsSubscription(DataType.BOOK, (XBTUSD,), book_depth=50))


# -- trades and candles share the REST normalisation ----------------------------------


def test_trades_share_the_rest_parser() -> None:
    src = source()
    buy = {**TRADE, "side": "Buy", "trdMatchID": "b", "homeNotional": "0.5", "price": "66481"}
    events = feed(
        src,
        {"info": "Welcome to the BitMEX Realtime API.", "version": "2.0.0"},
        {"success": True, "subscribe": "trade:XBTUSD"},
        {"table": "trade", "action": "partial", "filter": {"symbol": "XBTUSD"}, "data": [TRADE]},
        {"table": "trade", "action": "insert", "data": [buy]},
        "pong",
    )
    trades = [e for e in events if isinstance(e, WsTrades)]
    assert [t.symbol for t in trades] == [XBTUSD, XBTUSD]
    assert trades[0].rows.equals(mex.parse_trades([TRADE]))
    assert trades[1].rows.row(0) == (to_ns("2024-01-01T00:00:06.384Z"), "b", 66481.0, 0.5, "buy")
    assert sum(isinstance(e, WsIgnore) for e in events) == 3


def test_trade_bins_are_closed_and_open_stamped() -> None:
    events = feed(source(), {"table": "tradeBin1m", "action": "insert", "data": [BIN]})
    (candles,) = events
    assert isinstance(candles, WsCandles) and candles.span == Span.parse("1m")
    row = candles.rows.row(0, named=True)
    assert row["ts"] == to_ns("2024-01-01T00:00:00Z")  # stamped at the close on the wire
    assert row["closed"] is True
    assert candles.rows.drop("closed").equals(mex.parse_candles([BIN], Span.parse("1m")))


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        {"table": "trade", "action": "delete", "data": [TRADE]},
        {"table": "trade", "action": "insert", "data": [{**TRADE, "side": "Up"}]},
        {"table": "instrument", "action": "insert", "data": []},
        {"hello": 1},
    ],
)
def test_malformed_frames_raise(frame: object) -> None:
    with pytest.raises(UnexpectedPayload):
        feed(source(), frame)


def test_error_frame_raises() -> None:
    with pytest.raises(ExchangeError, match="Unknown table"):
        feed(source(), {"status": 400, "error": "Unknown table: tradeBin4h", "meta": {}})


# -- the level-id book -----------------------------------------------------------------


def test_book_partial_then_deltas_by_level_id() -> None:
    src = source()
    partial = book_msg(
        "partial",
        level(8_795_799_950, "Sell", 5_000, 42_000.5),
        level(8_795_800_000, "Buy", 8_400, 42_000.0),
        level(8_795_800_050, "Buy", 4_200, 41_999.5),
    )
    (snap,) = feed(src, {"info": "Welcome"}, partial)[1:]
    assert isinstance(snap, WsBook) and snap.snapshot and snap.last_seq == 0
    assert snap.bids == [(42_000.0, 8_400 / 42_000.0), (41_999.5, 4_200 / 41_999.5)]
    assert snap.asks == [(42_000.5, 5_000 / 42_000.5)]
    book = LiveBook(src)
    assert book.apply(snap)
    # update and delete rows carry no price: it comes from the level id
    events = feed(
        src,
        book_msg("update", level(8_795_800_000, "Buy", 2_100)),
        book_msg("delete", level(8_795_800_050, "Buy")),
        book_msg("insert", level(8_795_799_900, "Sell", 100, 42_001.0)),
    )
    for event in events:
        assert isinstance(event, WsBook) and book.apply(event)
    assert book.bids == {42_000.0: 2_100 / 42_000.0}
    assert book.asks == {42_000.5: 5_000 / 42_000.5, 42_001.0: 100 / 42_001.0}
    assert [e.last_seq for e in events] == [1, 2, 3]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "lost",
    [
        book_msg("update", level(1, "Buy", 100)),  # an id never announced
        book_msg("delete", level(8_795_799_950, "Buy")),  # right id, other side
        book_msg("insert", level(8_795_800_000, "Buy", 100, 42_000.0)),  # already there
    ],
)
def test_unknown_level_id_is_a_gap_until_the_next_partial(lost: dict) -> None:
    src = source()
    partial = book_msg(
        "partial",
        level(8_795_799_950, "Sell", 5_000, 42_000.5),
        level(8_795_800_000, "Buy", 8_400, 42_000.0),
    )
    book = LiveBook(src)
    assert book.apply(feed(src, partial)[0])  # type: ignore[arg-type]
    (gap,) = feed(src, lost)
    assert isinstance(gap, WsBook) and not book.apply(gap)
    assert not book.synced and "sequence gap" in book.last_problem
    # deltas before the next partial are dropped; the partial starts over
    (ignored,) = feed(src, book_msg("update", level(8_795_800_000, "Buy", 1)))
    assert isinstance(ignored, WsIgnore)
    (again,) = feed(src, {"info": "Welcome"}, partial)[1:]
    assert isinstance(again, WsBook) and book.apply(again) and book.synced


def test_deltas_before_the_partial_are_dropped() -> None:
    src = source()
    (event,) = feed(src, book_msg("update", level(8_795_800_000, "Buy", 1)))
    assert isinstance(event, WsIgnore)


# -- through operations.stream ----------------------------------------------------------


@pytest.fixture
def fake() -> BitmexStreamFake:
    return BitmexStreamFake(drop_every=15)


def _ping_often(src: object) -> None:
    assert isinstance(src, BitmexSource)
    src.ws_ping = WsPing("ping", 0.2)  # type: ignore[misc]  # 5 s on the real exchange


async def run_stream(
    fake: BitmexStreamFake, tmp_path: Path, data_type: str, runtime_s: float, **kw: object
) -> tuple[FlushReport, Store]:
    store = Store(tmp_path)
    final = await stream_on(
        fake, "bitmex", [XBTUSD], data_type, store=store, prepare=_ping_often,
        flush_interval_s=0.3, max_runtime_s=runtime_s, **kw,
    )  # fmt: skip
    return final, store


async def test_stream_trades_equal_truth_across_drops(
    fake: BitmexStreamFake, tmp_path: Path
) -> None:
    final, store = await run_stream(fake, tmp_path, "trades", 3.0)
    stored = store.read(DatasetKey.of("bitmex", "BTC/USD:BTC", "trades"))
    assert fake.drops >= 3 and final.reconnects >= 3
    assert fake.pings >= 3  # "ping" text frames, answered "pong" (parsed as WsIgnore)
    assert final.healed_gaps >= 3 and final.unhealed_gaps == 0
    first, last = int(stored["ts"].min()), int(stored["ts"].max())  # type: ignore[arg-type]
    assert last - first > 2_000 * NS_PER_MS
    truth = fake.rest.truth_trades(XBTUSD, first, last + 1)
    assert truth.group_by("ts").len()["len"].max() > 1  # same-ms trades in the stretch
    assert stored["trade_id"].is_unique().all()
    assert stored.sort("ts", "trade_id").equals(truth.sort("ts", "trade_id"))


def book_states(book: pl.DataFrame) -> list[tuple[tuple, tuple]]:
    states = []
    for _, frame in book.group_by("ts"):
        bids = frame.filter(pl.col("side") == "bid").sort("level")
        asks = frame.filter(pl.col("side") == "ask").sort("level")
        states.append(
            (
                tuple(zip(bids["price"], bids["amount"], strict=True)),
                tuple(zip(asks["price"], asks["amount"], strict=True)),
            )
        )
    return states


async def test_stream_book_resyncs_on_unknown_level_id(tmp_path: Path) -> None:
    fake = BitmexStreamFake(unknown_id_at=(20, 80), step_interval_s=0.002)
    final, store = await run_stream(
        fake, tmp_path, "book", 2.0, book_depth=10, snapshot_interval_s=0.05
    )
    assert fake.unknown_sent == 2
    assert final.resyncs >= 2 and fake.connections >= 3  # one resubscription per lost frame
    states = book_states(store.read(DatasetKey.of("bitmex", "BTC/USD:BTC", "book")))
    truth = {(b[:10], a[:10]) for b, a in fake.history}
    assert len(states) >= 5
    assert all(state in truth for state in states)  # every sample a true book


async def test_stream_book_never_crossed_with_skips_and_drops(tmp_path: Path) -> None:
    fake = BitmexStreamFake(drop_every=60, skip_rate=0.05, step_interval_s=0.002)
    final, store = await run_stream(
        fake, tmp_path, "book", 2.0, book_depth=25, snapshot_interval_s=0.05
    )
    book = store.read(DatasetKey.of("bitmex", "BTC/USD:BTC", "book"))
    assert fake.skipped >= 3 and fake.drops >= 1
    assert final.resyncs >= 1  # a skipped insert/delete showed as an unknown level id
    best = book.filter(pl.col("level") == 0).pivot("side", index="ts", values="price")
    assert best.height >= 5 and (best["bid"] < best["ask"]).all()
