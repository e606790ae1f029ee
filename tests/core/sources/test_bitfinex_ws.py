"""Bitfinex WebSocket: pure frame parsing, the book checksum, and operations.stream."""

from __future__ import annotations

import zlib
from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, DataType, ExchangeError, Span, Symbol
from dccd_core.operations.book import LiveBook
from dccd_core.sources.bitfinex import BitfinexSource
from dccd_core.sources.bitfinex.ws import js_number_text
from dccd_core.sources.ws import WsBook, WsCandles, WsIgnore, WsSubscription, WsTrades
from dccd_core.storage import Store
from tests.fakes.bitfinex_ws import BitfinexStreamFake
from tests.fakes.kit import feed, stream_on

BTC_USD = Symbol("BTC", "USD")


def source() -> BitfinexSource:
    return BitfinexSource(http=None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.00005, "0.00005"),
        (30000.0, "30000"),
        (30000, "30000"),
        (-1.25, "-1.25"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e21, "1e+21"),
        (0.1, "0.1"),
        (-0.00001, "-0.00001"),
    ],
)
def test_js_number_text(value: float, text: str) -> None:
    assert js_number_text(value) == text


def test_subscribe_messages_and_url() -> None:
    src = source()
    sub = WsSubscription(DataType.BOOK, (BTC_USD, Symbol.parse("BTC/USDT:USDT")), book_depth=20)
    assert src.ws_url(sub) == "wss://api-pub.bitfinex.com/ws/2"
    msgs = src.ws_subscribe_messages(sub)
    assert msgs[0] == {"event": "conf", "flags": 131072}
    assert msgs[2] == {
        "event": "subscribe",
        "channel": "book",
        "symbol": "tBTCF0:USTF0",
        "prec": "P0",
        "freq": "F0",
        "len": "25",
    }


def test_trades_frames_share_the_rest_side_mapping() -> None:
    src = source()
    events = feed(
        src,
        {"event": "info", "version": 2},
        {
            "event": "subscribed",
            "channel": "trades",
            "chanId": 17,
            "symbol": "tBTCUSD",
            "pair": "BTCUSD",
        },
        [17, [[401597395, 1574694478808, 0.005, 7245.3], [401597394, 1574694478800, -0.1, 7245]]],
        [17, "te", [401597396, 1574694479000, -0.25, 7244.9]],
        [17, "tu", [401597396, 1574694479000, -0.25, 7244.9]],
        [17, "hb"],
    )
    trades = [e for e in events if isinstance(e, WsTrades)]
    assert [t.symbol for t in trades] == [BTC_USD, BTC_USD]
    assert trades[0].rows["side"].to_list() == ["buy", "sell"]
    assert trades[1].rows.row(0) == (1574694479000 * NS_PER_MS, "401597396", 7244.9, 0.25, "sell")
    assert sum(isinstance(e, WsIgnore) for e in events) == 4


def test_candles_close_when_a_newer_bar_starts() -> None:
    src = source()
    span = Span.parse("1m")
    t = 1_704_067_200_000
    events = feed(
        src,
        {"event": "subscribed", "channel": "candles", "chanId": 9, "key": "trade:1m:tBTCUSD"},
        [9, [[t + 60_000, 10, 11, 12, 9, 1.5], [t, 9, 10, 10.5, 8.5, 2]]],
        [9, [t + 60_000, 10, 11.5, 12, 9, 1.7]],
        [9, [t + 120_000, 11.5, 11.6, 11.7, 11.4, 0.1]],
    )
    candles = [e for e in events if isinstance(e, WsCandles)]
    assert all(c.span == span for c in candles)
    first = candles[0].rows
    assert first["ts"].to_list() == [t * NS_PER_MS, (t + 60_000) * NS_PER_MS]
    assert first["close"].to_list() == [10.0, 11.0]  # [MTS, O, C, H, L, V]
    assert first["closed"].to_list() == [True, True]  # old bars: their end has passed
    last = candles[-1].rows
    assert last.filter(pl.col("ts") == (t + 60_000) * NS_PER_MS)["close"].to_list() == [11.5]


def test_book_checksum_keeps_and_breaks_the_live_book() -> None:
    src = source()
    feed(src, {"event": "subscribed", "channel": "book", "chanId": 5, "symbol": "tBTCUSD"})
    snap = src.parse_ws_message("[5,[[30000,2,0.5],[29999.5,1,0.00005],[30000.5,1,-1.25]]]")[0]
    assert isinstance(snap, WsBook) and snap.snapshot
    book = LiveBook(src)
    assert book.apply(snap)
    text = "30000:0.5:30000.5:-1.25:29999.5:0.00005"
    crc = zlib.crc32(text.encode())
    good = crc - (1 << 32) if crc >= 1 << 31 else crc
    assert book.apply(src.parse_ws_message(f'[5,"cs",{good}]')[0])  # type: ignore[arg-type]
    delete = src.parse_ws_message("[5,[29999.5,0,1]]")[0]
    assert isinstance(delete, WsBook) and delete.bids == [(29999.5, 0.0)]
    assert book.apply(delete) and 29999.5 not in book.bids
    assert not book.apply(src.parse_ws_message(f'[5,"cs",{good}]')[0])  # type: ignore[arg-type]
    assert not book.synced and book.last_problem == "checksum mismatch"


def test_error_event_raises() -> None:
    with pytest.raises(ExchangeError, match="10300"):
        feed(source(), {"event": "error", "msg": "Subscription failed (generic)", "code": 10300})


# -- through operations.stream --------------------------------------------------------


@pytest.fixture
def fake() -> BitfinexStreamFake:
    return BitfinexStreamFake(drop_every=60, gap_at=(60, 200))


async def test_stream_trades_equal_truth_across_drops(
    fake: BitfinexStreamFake, tmp_path: Path
) -> None:
    store = Store(tmp_path)
    # each reconnect's REST heal waits for Bitfinex's request spacing (~3 s), so the run
    # must outlast two of them for the second reconnect to be seen
    final = await stream_on(
        fake, "bitfinex", [BTC_USD], "trades", store=store, flush_interval_s=0.3,
        max_runtime_s=6.0,
    )
    stored = store.read(DatasetKey.of("bitfinex", "BTC/USD", "trades"))
    assert fake.drops >= 2 and final.reconnects >= 2
    assert final.unhealed_gaps == 0
    first, last = int(stored["ts"].min()), int(stored["ts"].max())  # type: ignore[arg-type]
    truth = fake.rest.truth_trades(BTC_USD, first, last + 1)
    assert stored["trade_id"].is_unique().all()
    assert stored.sort("ts", "trade_id").equals(truth.sort("ts", "trade_id"))


async def test_stream_book_resubscribes_on_checksum_gap(
    fake: BitfinexStreamFake, tmp_path: Path
) -> None:
    store = Store(tmp_path)
    final = await stream_on(
        fake, "bitfinex", [BTC_USD], "book", store=store, book_depth=10,
        snapshot_interval_s=0.05, flush_interval_s=0.3, max_runtime_s=2.5,
    )
    book = store.read(DatasetKey.of("bitfinex", "BTC/USD", "book"))
    assert book.height > 0
    assert final.resyncs >= 1 and fake.connections >= 2  # a resubscription after a gap
    truth = {(b[:10], a[:10]) for b, a in fake.history}
    good = 0
    snapshots = 0
    for _, frame in book.group_by("ts"):
        snapshots += 1
        bids = frame.filter(pl.col("side") == "bid").sort("level")
        asks = frame.filter(pl.col("side") == "ask").sort("level")
        state = (
            tuple(zip(bids["price"], bids["amount"], strict=True)),
            tuple(zip(asks["price"], asks["amount"], strict=True)),
        )
        good += state in truth
    # a sample may fall between a lost update and the checksum that exposes it
    assert snapshots >= 5 and good >= snapshots - len(fake.gap_at)
