"""OKX streams: frame parsers, the documented checksum, and operations.stream against a fake."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl
import pytest

from dccd_core.domain import NS_PER_MS, DatasetKey, DataType, Span, Symbol
from dccd_core.domain.errors import ExchangeError, NoCapability, UnexpectedPayload
from dccd_core.sources.book_checksum import interleaved_checksum, interleaved_text
from dccd_core.sources.okx import OkxSource
from dccd_core.sources.okx.symbols import Contract
from dccd_core.sources.registry import build_source
from dccd_core.sources.ws import SeqCheck, WsBook, WsCandles, WsIgnore, WsSubscription, WsTrades
from dccd_core.storage import Store
from tests.fakes.kit import checked_book_samples, stream_on
from tests.fakes.okx_ws import CT_VAL, FIRST_ID, OkxStreamFake

SPOT = Symbol("BTC", "USDT")
SWAP = Symbol("BTC", "USDT", "USDT")
TRADES = DatasetKey("okx", SWAP, DataType.TRADES)
BOOK = DatasetKey("okx", SWAP, DataType.BOOK)


def _source(ws_url: str = "ws://127.0.0.1:9") -> OkxSource:
    source = build_source("okx", rest_url="http://127.0.0.1:9", ws_url=ws_url)
    assert isinstance(source, OkxSource)
    return source


def _subscribed(sub: WsSubscription, contract: Contract | None = None) -> OkxSource:
    source = _source()
    source._ws_contracts = {"BTC-USDT-SWAP": contract, "BTC-USDT": None}
    source.ws_url(sub)
    return source


# -- parsers -----------------------------------------------------------------------------


def test_documented_checksum_examples() -> None:
    bids, asks = [("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")]
    assert interleaved_text(bids, asks, 25) == "3366.1:7:3366.8:9:3366:6:3368:8"
    assert interleaved_checksum(bids, asks, 25) == -1881014294
    odd = [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    assert interleaved_text([("3366.1", "7")], odd, 25) == "3366.1:7:3366.8:9:3368:8:3372:8"
    assert interleaved_checksum([("3366.1", "7")], odd, 25) == 831078360


def test_urls_and_subscriptions() -> None:
    source = _source()
    trades = WsSubscription(DataType.TRADES, (SPOT,))
    assert source.ws_url(trades) == "ws://127.0.0.1:9/ws/v5/business"
    assert source.ws_subscribe_messages(trades) == [
        {"op": "subscribe", "args": [{"channel": "trades-all", "instId": "BTC-USDT"}]}
    ]
    book = WsSubscription(DataType.BOOK, (SPOT,), book_depth=20)
    assert source.ws_url(book).endswith("/ws/v5/public")
    candles = WsSubscription(DataType.OHLC, (SPOT,), Span.parse("1d"))
    assert source.ws_subscribe_messages(candles)[0]["args"][0]["channel"] == "candle1Dutc"  # type: ignore[index]
    with pytest.raises(NoCapability, match="prepare_ws"):
        source.ws_url(WsSubscription(DataType.TRADES, (SWAP,)))


def test_trade_push_swap_contracts_to_base() -> None:
    source = _subscribed(WsSubscription(DataType.TRADES, (SWAP,)), Contract(0.01, False))
    push = {
        "arg": {"channel": "trades-all", "instId": "BTC-USDT-SWAP"},
        "data": [
            {
                "instId": "BTC-USDT-SWAP",
                "tradeId": "130639474",
                "px": "42219.9",
                "sz": "12",
                "side": "sell",
                "ts": "1630048897897",
            }
        ],
    }
    [event] = source.parse_ws_message(orjson.dumps(push))
    assert isinstance(event, WsTrades) and event.symbol == SWAP
    assert event.rows.rows() == [
        (1630048897897 * NS_PER_MS, "130639474", 42219.9, 12 * 0.01, "sell")
    ]


def test_candle_push_keeps_the_open_flag() -> None:
    source = _subscribed(WsSubscription(DataType.OHLC, (SPOT,), Span.parse("1d")))
    push = {
        "arg": {"channel": "candle1Dutc", "instId": "BTC-USDT"},
        "data": [
            [
                "1597017600000",
                "8533.02",
                "8553.74",
                "8527.17",
                "8548.26",
                "45247",
                "529.5858061",
                "386848923.2",
                "0",
            ]
        ],
    }
    [event] = source.parse_ws_message(orjson.dumps(push))
    assert isinstance(event, WsCandles) and event.span == Span.parse("1d")
    row = event.rows.row(0, named=True)
    assert row["closed"] is False and row["volume"] == 45247.0 and row["open"] == 8533.02


def test_book_push_sequence_and_checksum() -> None:
    source = _subscribed(WsSubscription(DataType.BOOK, (SWAP,)), Contract(0.01, False))
    item = {
        "asks": [["8476.98", "415", "0", "13"]],
        "bids": [["8476.5", "20", "0", "2"]],
        "ts": "1597026383085",
        "checksum": -855196043,
        "prevSeqId": 123456,
        "seqId": 123457,
    }
    push = {
        "arg": {"channel": "books", "instId": "BTC-USDT-SWAP"},
        "action": "update",
        "data": [item],
    }
    [book] = source.parse_ws_message(orjson.dumps(push))
    assert isinstance(book, WsBook) and not book.snapshot
    assert list(book.asks) == [(8476.98, 415 * 0.01)]
    assert list(book.ask_texts or []) == [("8476.98", "415")]  # checksum uses the raw texts
    assert book.checksum == -855196043
    assert source.check_book_sequence(123456, book) is SeqCheck.APPLY
    assert source.check_book_sequence(123450, book) is SeqCheck.GAP
    heartbeat = WsBook(SWAP, 0, False, [], [], last_seq=123457, prev_seq=123457)
    assert source.check_book_sequence(123457, heartbeat) is SeqCheck.APPLY


def test_control_frames() -> None:
    source = _subscribed(WsSubscription(DataType.TRADES, (SPOT,)))
    assert isinstance(source.parse_ws_message("pong")[0], WsIgnore)
    ack = {"event": "subscribe", "arg": {"channel": "trades-all", "instId": "BTC-USDT"}}
    assert isinstance(source.parse_ws_message(orjson.dumps(ack))[0], WsIgnore)
    error = {"event": "error", "code": "60012", "msg": "Invalid request"}
    with pytest.raises(ExchangeError, match="60012"):
        source.parse_ws_message(orjson.dumps(error))
    with pytest.raises(UnexpectedPayload, match="ETH-USDT"):
        source.parse_ws_message(
            orjson.dumps({"arg": {"channel": "trades-all", "instId": "ETH-USDT"}, "data": []})
        )


# -- through operations.stream -------------------------------------------------------------


def _assert_okx(source: object) -> None:
    assert isinstance(source, OkxSource)


async def test_swap_trades_equal_truth_across_drops(tmp_path: Path) -> None:
    fake = OkxStreamFake(per_ms=1, drop_every=300)
    store = Store(tmp_path)
    final = await stream_on(
        fake, "okx", [SWAP], "trades", store=store, prepare=_assert_okx, flush_interval_s=0.3,
        max_runtime_s=2.5,
    )
    stored = store.read(TRADES)
    assert fake.drops >= 3 and final.reconnects >= 3
    assert final.healed_gaps >= final.reconnects and final.unhealed_gaps == 0
    ids = stored["trade_id"].cast(pl.Int64)
    assert ids.is_unique().all()
    first, last = int(ids.min()) - FIRST_ID, int(ids.max()) - FIRST_ID  # type: ignore[arg-type]
    truth = fake.truth(first, last)
    assert stored.height == len(truth) > 1_000  # nothing lost at any drop
    got = stored.sort("trade_id").rows()
    want = sorted(
        (int(r["ts"]) * NS_PER_MS, r["tradeId"], float(r["px"]), float(r["sz"]) * CT_VAL, r["side"])
        for r in truth
    )
    assert sorted(got, key=lambda r: r[1]) == sorted(want, key=lambda r: r[1])


async def test_book_gap_and_bad_checksum_resubscribe(tmp_path: Path) -> None:
    fake = OkxStreamFake(gap_at=(1101,), bad_checksum_at=(1251,))
    store = Store(tmp_path)
    final = await stream_on(
        fake, "okx", [SWAP], "book", store=store, prepare=_assert_okx, book_depth=10,
        snapshot_interval_s=0.05, flush_interval_s=0.3, max_runtime_s=2.0,
    )
    assert final.resyncs >= 2 and fake.connections >= 3
    assert fake.subscriptions[0] == [{"channel": "books", "instId": "BTC-USDT-SWAP"}]
    book = store.read(BOOK)
    # every snapshot has its truth (a missing one is a KeyError)
    checked = checked_book_samples(book, lambda ts: fake.book_history[ts // NS_PER_MS - fake.t0_ms])
    assert checked >= 10
