"""Bybit streams: frame parsers on documented pushes, and operations.stream against a fake."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, DataType, Span, Symbol
from dccd_core.domain.errors import ExchangeError, NoCapability, UnexpectedPayload
from dccd_core.sources.bybit import BybitSource
from dccd_core.sources.registry import build_source
from dccd_core.sources.ws import SeqCheck, WsBook, WsCandles, WsIgnore, WsSubscription, WsTrades
from dccd_core.storage import Store
from tests.fakes.bybit_ws import BybitStreamFake
from tests.fakes.kit import checked_book_samples, stream_on

LINEAR = Symbol("BTC", "USDT", "USDT")
INVERSE = Symbol("BTC", "USD", "BTC")
TRADES = DatasetKey(source_id := "bybit", LINEAR, DataType.TRADES)
BOOK = DatasetKey(source_id, LINEAR, DataType.BOOK)


def _subscribed(symbols: tuple[Symbol, ...], data_type: DataType, **kw: object) -> BybitSource:
    source = build_source("bybit", rest_url="http://127.0.0.1:9")
    assert isinstance(source, BybitSource)
    source.ws_url(WsSubscription(data_type, symbols, **kw))  # type: ignore[arg-type]
    return source


def _frame(obj: object) -> bytes:
    return orjson.dumps(obj)


# -- parsers -----------------------------------------------------------------------------


def test_url_and_subscriptions() -> None:
    source = build_source("bybit", rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    assert isinstance(source, BybitSource)
    sub = WsSubscription(DataType.BOOK, (LINEAR, Symbol("ETH", "USDT", "USDT")), book_depth=20)
    assert source.ws_url(sub) == "ws://127.0.0.1:9/v5/public/linear"
    assert source.ws_subscribe_messages(sub) == [
        {"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT"]}
    ]
    candles = WsSubscription(DataType.OHLC, (Symbol("BTC", "USDT"),), Span.parse("1h"))
    assert source.ws_url(candles).endswith("/v5/public/spot")
    assert source.ws_subscribe_messages(candles)[0]["args"] == ["kline.60.BTCUSDT"]  # type: ignore[index]
    with pytest.raises(NoCapability, match="one category"):
        source.ws_url(WsSubscription(DataType.TRADES, (LINEAR, Symbol("BTC", "USDT"))))
    with pytest.raises(NoCapability, match="200"):
        source.ws_subscribe_messages(WsSubscription(DataType.BOOK, (LINEAR,), book_depth=500))


def test_trade_push_uses_the_rest_side_mapping() -> None:
    source = _subscribed((LINEAR,), DataType.TRADES)
    push = {
        "topic": "publicTrade.BTCUSDT",
        "type": "snapshot",
        "ts": 1672304486868,
        "data": [
            {
                "T": 1672304486865,
                "s": "BTCUSDT",
                "S": "Buy",
                "v": "0.001",
                "p": "16578.50",
                "L": "PlusTick",
                "i": "20f43950-d8dd-5b31-9112-a178eb6023af",
                "BT": False,
            },
            {
                "T": 1672304486865,
                "s": "BTCUSDT",
                "S": "Sell",
                "v": "0.25",
                "p": "16578.00",
                "L": "MinusTick",
                "i": "20f43950-d8dd-5b31-9112-a178eb6023b0",
                "BT": False,
            },
        ],
    }
    [event] = source.parse_ws_message(_frame(push))
    assert isinstance(event, WsTrades) and event.symbol == LINEAR
    assert event.rows.rows() == [
        (1672304486865 * NS_PER_MS, "20f43950-d8dd-5b31-9112-a178eb6023af", 16578.5, 0.001, "buy"),
        (1672304486865 * NS_PER_MS, "20f43950-d8dd-5b31-9112-a178eb6023b0", 16578.0, 0.25, "sell"),
    ]
    push["data"][0]["S"] = "Short"  # type: ignore[index]
    with pytest.raises(UnexpectedPayload, match="Short"):
        source.parse_ws_message(_frame(push))


def test_kline_push_carries_the_confirm_flag() -> None:
    source = _subscribed((INVERSE,), DataType.OHLC, span=Span.parse("5m"))
    push = {
        "topic": "kline.5.BTCUSD",
        "type": "snapshot",
        "ts": 1672324988882,
        "data": [
            {
                "start": 1672324800000,
                "end": 1672325099999,
                "interval": "5",
                "open": "16649.5",
                "close": "16677",
                "high": "16677",
                "low": "16608",
                "volume": "34666",
                "turnover": "2.081",
                "confirm": False,
                "timestamp": 1672324988882,
            },
        ],
    }
    [event] = source.parse_ws_message(_frame(push))
    assert isinstance(event, WsCandles) and event.span == Span.parse("5m")
    row = event.rows.row(0, named=True)
    assert row["closed"] is False and row["ts"] == 1672324800000 * NS_PER_MS
    assert row["volume"] == 2.081 and row["quote_volume"] == 34666.0  # inverse: turnover is BTC


def test_book_pushes_and_sequence_rule() -> None:
    source = _subscribed((LINEAR,), DataType.BOOK)
    snap = {
        "topic": "orderbook.50.BTCUSDT",
        "type": "snapshot",
        "ts": 1687940967466,
        "data": {
            "s": "BTCUSDT",
            "b": [["30247.20", "30.028"]],
            "a": [["30248.70", "0"]],
            "u": 177400507,
            "seq": 66544703342,
        },
        "cts": 1687940967464,
    }
    [book] = source.parse_ws_message(_frame(snap))
    assert isinstance(book, WsBook) and book.snapshot and book.last_seq == 177400507
    assert book.ts == 1687940967464 * NS_PER_MS
    assert list(book.bids) == [(30247.2, 30.028)] and list(book.asks) == [(30248.7, 0.0)]
    delta = {**snap, "type": "delta", "data": {**snap["data"], "u": 177400508}}  # type: ignore[dict-item]
    [nxt] = source.parse_ws_message(_frame(delta))
    assert isinstance(nxt, WsBook) and not nxt.snapshot
    assert source.check_book_sequence(177400507, nxt) is SeqCheck.APPLY
    assert source.check_book_sequence(177400506, nxt) is SeqCheck.GAP
    assert source.check_book_sequence(177400508, nxt) is SeqCheck.STALE


def test_control_frames() -> None:
    source = _subscribed((LINEAR,), DataType.TRADES)
    pong = {"success": True, "ret_msg": "pong", "conn_id": "abc", "op": "ping"}
    assert isinstance(source.parse_ws_message(_frame(pong))[0], WsIgnore)
    refused = {"success": False, "ret_msg": "error:handler not found,topic:x", "op": "subscribe"}
    with pytest.raises(ExchangeError, match="handler not found"):
        source.parse_ws_message(_frame(refused))
    with pytest.raises(UnexpectedPayload):
        source.parse_ws_message(b"[1, 2]")
    with pytest.raises(UnexpectedPayload, match="ETHUSDT"):
        source.parse_ws_message(_frame({"topic": "publicTrade.ETHUSDT", "data": []}))


# -- through operations.stream -------------------------------------------------------------


def _assert_bybit(source: object) -> None:
    assert isinstance(source, BybitSource)


@pytest.mark.parametrize("subscribe_delay_s", [0.0, 0.15])
async def test_trades_equal_truth_across_drops(tmp_path: Path, subscribe_delay_s: float) -> None:
    # With a delay, trades happen between the connect-time heal and the first push;
    # ids are not consecutive, so only healing up to the first frame can find them.
    fake = BybitStreamFake(per_ms=2, drop_every=40, subscribe_delay_s=subscribe_delay_s)
    store = Store(tmp_path)
    final = await stream_on(
        fake, "bybit", [LINEAR], "trades", store=store, prepare=_assert_bybit, flush_interval_s=0.3,
        max_runtime_s=2.5,
    )
    stored = store.read(TRADES)
    assert fake.drops >= 3 and final.reconnects >= 3
    assert final.healed_gaps + final.unhealed_gaps >= final.reconnects
    assert fake.rest_requests >= final.reconnects
    assert stored["trade_id"].is_unique().all()
    indexes = [fake.index_of(i) for i in stored["trade_id"]]
    first, last = min(indexes), max(indexes)
    truth = fake.truth(first, last)
    assert stored.height > 1_000
    # Nothing is lost *silently*: Bybit's REST keeps only its latest 1000 trades, so a
    # gap longer than that (a loaded machine) cannot be healed — then it must be an
    # unhealed gap and a hole in the recorded coverage, never a quiet omission.
    missing = sorted(set(range(first, last + 1)) - set(indexes))
    if missing:
        assert final.unhealed_gaps > 0
        holes = store.holes(TRADES, truth[0]["T"] * NS_PER_MS, truth[-1]["T"] * NS_PER_MS + 1)
        for index in missing:
            ts = fake.truth(index, index)[0]["T"] * NS_PER_MS
            assert any(lo <= ts < hi for lo, hi in holes), (index, ts, holes)
    else:
        assert stored.height == len(truth) and final.unhealed_gaps == 0
    ordered = stored.sort("ts", maintain_order=True)
    by_id = {r["i"]: r for r in truth}
    sample = ordered.sample(200, seed=1).rows(named=True)
    for row in sample:
        rec = by_id[row["trade_id"]]
        assert row["ts"] == rec["T"] * NS_PER_MS and row["price"] == float(rec["p"])
        assert row["amount"] == float(rec["v"]) and row["side"] == rec["S"].lower()


async def test_book_gap_resubscribes_and_stores_only_true_books(tmp_path: Path) -> None:
    fake = BybitStreamFake(gap_at=(1101, 1251), book_interval_s=0.004)
    store = Store(tmp_path)
    final = await stream_on(
        fake, "bybit", [LINEAR], "book", store=store, prepare=_assert_bybit, book_depth=10,
        snapshot_interval_s=0.05, flush_interval_s=0.3, max_runtime_s=2.0,
    )
    assert final.resyncs >= 2 and fake.connections >= 3
    assert fake.subscriptions[0] == ["orderbook.50.BTCUSDT"]
    book = store.read(BOOK)
    # every snapshot has its truth (a missing one is a KeyError)
    checked = checked_book_samples(book, lambda ts: fake.book_history[ts // NS_PER_MS - fake.t0_ms])
    assert checked >= 10
