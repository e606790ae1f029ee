"""Liquidations (stream only): the documented frames (Binance forceOrder, Bybit
allLiquidation, OKX liquidation-orders, BitMEX liquidation), rows equal to what the
exchange sent between drops, a dropped connection shown as a gap in coverage and in the
report (never healed from REST), and the refusals of a spot symbol and a backfill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from dccd_core.domain import (
    NO_REST_HISTORY,
    NS_PER_MS,
    DatasetKey,
    NoCapability,
    UnexpectedPayload,
)
from dccd_core.operations import backfill
from dccd_core.operations.stream import stream
from dccd_core.sources.registry import build_source
from dccd_core.sources.ws import WsLiquidations, WsSubscription
from dccd_core.storage import Store, find_holes
from tests.fakes.kit import stream_on
from tests.fakes.liquidations_ws import (
    BitmexLiquidationsFake,
    BybitLiquidationsFake,
    LiquidationsFake,
    OkxLiquidationsFake,
    bitmex_insert,
    force_order,
)

PERP = "BTC/USDT:USDT"
KEY = DatasetKey.of("binance", PERP, "liquidations")
FAKES: dict[str, type[LiquidationsFake]] = {
    "binance": LiquidationsFake,
    "bybit": BybitLiquidationsFake,
    "okx": OkxLiquidationsFake,
    "bitmex": BitmexLiquidationsFake,
}
#: the instrument listings OKX and BitMEX read for contract sizes before connecting
_LISTINGS = ("/api/v5/public/instruments", "/api/v1/instrument/active")


def _no_rest(source: Any) -> None:
    """A REST call fails the test: liquidations have no REST history to heal from (the
    contract sizes read before connecting are the one request allowed)."""
    allowed = source._response

    async def refuse(request: Any) -> Any:
        if request.path in _LISTINGS:
            return await allowed(request)
        raise AssertionError(f"a liquidations stream called REST: {request}")

    source._response = refuse


def _truth(indices: list[int], fake: LiquidationsFake) -> list[tuple[Any, ...]]:
    """Liquidation rows as stored; BitMEX's without ts (stamped on arrival) but with its
    order id."""
    rows: list[tuple[Any, ...]] = []
    for i in indices:
        o = force_order(i, fake.t0_ms, fake.step_ms)["o"]
        row = (o["S"].lower(), float(o["ap"]), float(o["z"]))
        if isinstance(fake, BitmexLiquidationsFake):
            rows.append((*row, bitmex_insert(i, fake.t0_ms, fake.step_ms)["orderID"]))
        else:
            rows.append((o["T"] * NS_PER_MS, *row, None))
    return rows


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Floats to 12 digits: sizes converted from contracts (OKX, BitMEX) may differ from
    the truth's decimal text in the last bit."""
    return tuple(round(v, 12) if isinstance(v, float) else v for v in row)


def _indices(stored: pl.DataFrame, fake: LiquidationsFake) -> list[int]:
    """The index of each stored liquidation: from its ts, or BitMEX's order id (whose ts
    is the arrival, checked to lie between the send and a moment later)."""
    if not isinstance(fake, BitmexLiquidationsFake):
        return [fake.index_of(int(ts)) for ts in stored["ts"]]
    assert not any(oid.startswith("resting") for oid in stored["order_id"])  # the partial's
    indices = [int(oid.rsplit("-", 1)[1]) for oid in stored["order_id"]]
    for i, ts in zip(indices, stored["ts"], strict=True):
        assert fake.sent_at[i] * NS_PER_MS <= ts < (fake.sent_at[i] + 2_000) * NS_PER_MS
    return indices


def _check_sessions(stored: pl.DataFrame, fake: LiquidationsFake) -> None:
    """Each connection's rows are stored as sent: all of them but for the last push or
    two before its cut (in flight when the TCP connection died: unseen by the client, so
    lost like any liquidation of the gap), or the pushes after the stop."""
    indices = _indices(stored, fake)
    got = set(indices)
    assert stored.height == len(got) and indices == sorted(indices)
    for n, sent in enumerate(fake.sessions, 1):
        kept = [i for i in sent if i in got]
        assert kept == sent[: len(kept)], (sent, kept)
        if n < len(fake.sessions):  # a cut: what was in flight
            assert len(sent) - len(kept) <= 2, (sent, kept)
        # the last session's tail may be longer: the fake pushes on until the test
        # stops it, after the stream's own stop and final flush
    if isinstance(fake, BitmexLiquidationsFake):
        got_rows = stored.select("side", "price", "amount", "order_id").rows()
    else:
        got_rows = stored.rows()
    assert [_rounded(r) for r in got_rows] == [_rounded(r) for r in _truth(sorted(got), fake)]
    assert got <= set(fake.sent)


def test_documented_force_order_frame() -> None:
    """Binance's documented sample (USD-M Liquidation Order Streams), one row, no id."""
    source = build_source("binance")
    sub = WsSubscription(KEY.data_type, (KEY.symbol,))
    assert source.ws_url(sub).endswith("/stream?streams=btcusdt@forceOrder")
    order = {
        "s": "BTCUSDT",
        "S": "SELL",
        "o": "LIMIT",
        "f": "IOC",
        "q": "0.014",
        "p": "9910",
        "ap": "9910",
        "X": "FILLED",
        "l": "0.014",
        "z": "0.014",
        "T": 1568014460893,
    }
    data = {"e": "forceOrder", "E": 1568014460893, "o": order}
    frame = {"stream": "btcusdt@forceOrder", "data": data}
    (event,) = source.parse_ws_messages([orjson.dumps(frame)])
    assert isinstance(event, WsLiquidations)
    assert event.rows.rows() == [(1568014460893 * NS_PER_MS, "sell", 9910.0, 0.014, None)]


@pytest.mark.parametrize("exchange", list(FAKES))
async def test_rows_equal_truth_without_drops(tmp_path: Path, exchange: str) -> None:
    fake = FAKES[exchange]()
    store = Store(tmp_path)
    final = await stream_on(
        fake, exchange, [PERP], "liquidations", store=store, prepare=_no_rest,
        flush_interval_s=0.2, max_runtime_s=1.5,
    )  # fmt: skip
    _check_subscribed(fake, exchange)
    assert final.reconnects == 0 and final.unhealed_gaps == 0 and final.healed_gaps == 0
    key = DatasetKey.of(exchange, PERP, "liquidations")
    stored = store.read(key).sort("ts")
    assert stored.height > (20 if exchange == "bitmex" else 100)
    _check_sessions(stored, fake)
    assert not find_holes(
        key, store.coverage(key), int(stored["ts"][0]), int(stored["ts"][-1])
    ).holes


def _check_subscribed(fake: LiquidationsFake, exchange: str) -> None:
    """Every connection subscribed the exchange's liquidations channel of BTCUSDT (in the
    URL, Binance and BitMEX record a request whose handshake the stop may cut short)."""
    n = fake.connections
    if isinstance(fake, BybitLiquidationsFake | OkxLiquidationsFake):
        # OKX's is per instrument type, not per instrument; the last connection may
        # close at the stop before its subscribe arrives
        expected: Any = ["allLiquidation.BTCUSDT"]
        if isinstance(fake, OkxLiquidationsFake):
            expected = [{"channel": "liquidation-orders", "instType": "SWAP"}]
        subs = fake.subscriptions
        assert all(sub == expected for sub in subs) and n - 1 <= len(subs) <= n, subs
    else:
        asked = fake.subscribed if isinstance(fake, BitmexLiquidationsFake) else fake.streams
        expected = "liquidation:XBTUSDT" if isinstance(fake, BitmexLiquidationsFake) else (
            "btcusdt@forceOrder")  # fmt: skip
        assert set(asked) == {expected} and len(asked) >= n


def _lost_times(fake: LiquidationsFake) -> list[int]:
    """When each liquidation never pushed (it happened while disconnected) happened.

    BitMEX rows are stamped on arrival, so a lost one counts from the later of its time
    and the last push before it: a fake that fell behind its clock under load pushes
    late, where BitMEX pushes as it happens."""
    sent = set(fake.sent)
    times = []
    last_push_ms = 0
    for i in range(min(sent), max(sent)):
        if i in sent:
            last_push_ms = getattr(fake, "sent_at", {}).get(i, 0)
            continue
        times.append(max(fake.t0_ms + i * fake.step_ms, last_push_ms) * NS_PER_MS)
    return times


@pytest.mark.parametrize("exchange", list(FAKES))
async def test_dropped_connection_is_an_unhealed_gap(tmp_path: Path, exchange: str) -> None:
    fake = FAKES[exchange](drop_every=20 if exchange == "bitmex" else 60)
    fake.outage_ms = 4 * fake.step_ms
    store = Store(tmp_path)
    final = await stream_on(
        fake, exchange, [PERP], "liquidations", store=store, prepare=_no_rest,
        flush_interval_s=0.2, max_runtime_s=2.5,
    )  # fmt: skip
    key = DatasetKey.of(exchange, PERP, "liquidations")
    _check_subscribed(fake, exchange)
    stored = store.read(key).sort("ts")
    # what was sent, and only that, is stored: nothing invented for the gaps
    _check_sessions(stored, fake)
    assert fake.drops >= 2 and final.reconnects >= 2
    assert final.unhealed_gaps == final.reconnects and final.healed_gaps == 0
    assert final.per_symbol[PERP].unhealed_gaps == final.reconnects
    # every liquidation lost while disconnected lies in a coverage hole
    first, last = int(stored["ts"][0]), int(stored["ts"][-1])
    holes = find_holes(key, store.coverage(key), first, last).holes
    assert len(holes) >= final.reconnects - 1
    lost = _lost_times(fake)
    assert lost
    # (a flush while the cut is not noticed yet may claim up to its own time: the
    # documented limit of stream_only.py, at most a flush interval before the hole)
    noticed_ns = 200 * NS_PER_MS
    assert all(any(a - noticed_ns <= ts < b for a, b in holes) for ts in lost), (lost, holes)
    # and no stored row is inside a hole
    assert not any(a <= ts < b for ts in stored["ts"] for a, b in holes)


async def test_spot_symbol_refused() -> None:
    with pytest.raises(
        NoCapability, match="liquidations needs a perpetual symbol like BTC/USDT:USDT"
    ):
        await stream("binance", ["BTC/USDT"], "liquidations", store=Store("/nonexistent"))


async def test_backfill_refused_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(NoCapability, match=NO_REST_HISTORY):
        await backfill(KEY, store=Store(tmp_path))
    assert not list(tmp_path.iterdir())


def test_schema_and_key() -> None:
    from dccd_core.domain import natural_key, schema_for

    assert schema_for(KEY.data_type).names == ["ts", "side", "price", "amount", "order_id"]
    assert schema_for(KEY.data_type).field("order_id").nullable
    assert natural_key(KEY.data_type) == ("ts", "side", "price", "amount")
    assert pl.DataFrame  # polars imported for the frame types above


def test_bybit_documented_all_liquidation_frame() -> None:
    """Bybit's documented sample: ``S`` is the liquidated position's side, so a ``Sell``
    (a short liquidated) is stored as the closing order's side, ``buy``."""
    source = build_source("bybit")
    perp = DatasetKey.of("bybit", "ROSE/USDT:USDT", "liquidations")
    sub = WsSubscription(perp.data_type, (perp.symbol,))
    assert source.ws_url(sub).endswith("/v5/public/linear")
    assert source.ws_subscribe_messages(sub) == [
        {"op": "subscribe", "args": ["allLiquidation.ROSEUSDT"]}
    ]
    frame = {"topic": "allLiquidation.ROSEUSDT", "type": "snapshot", "ts": 1739502303204,
             "data": [{"T": 1739502302929, "s": "ROSEUSDT", "S": "Sell", "v": "20000",
                       "p": "0.04499"}]}  # fmt: skip
    (event,) = source.parse_ws_messages([orjson.dumps(frame)])
    assert isinstance(event, WsLiquidations)
    assert event.rows.rows() == [(1739502302929 * NS_PER_MS, "buy", 0.04499, 20000.0, None)]


def test_okx_documented_liquidation_orders_frame() -> None:
    """The channel's push (ccxt's recorded sample): every swap's liquidations on one
    subscription per instrument type, the subscribed swap's kept, contracts to base with
    ``ctVal``, the bankruptcy price as the price, ``side`` the order's side."""
    from dccd_core.sources.okx.symbols import Contract

    source = build_source("okx")
    perp = DatasetKey.of("okx", "IOST/USDT:USDT", "liquidations")
    sub = WsSubscription(perp.data_type, (perp.symbol,))
    source._ws_contracts = {"IOST-USDT-SWAP": Contract(1000.0, inverse=False)}
    assert source.ws_url(sub).endswith("/ws/v5/public")
    assert source.ws_subscribe_messages(sub) == [
        {"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]}
    ]
    detail = {"bkLoss": "0", "bkPx": "0.007831", "ccy": "", "posSide": "short", "side": "buy",
              "sz": "13", "ts": "1692266434010"}  # fmt: skip
    frame = {"arg": {"channel": "liquidation-orders", "instType": "SWAP"},
             "data": [{"details": [detail], "instFamily": "IOST-USDT",
                       "instId": "IOST-USDT-SWAP", "instType": "SWAP", "uly": "IOST-USDT"},
                      {"details": [{**detail, "bkPx": "1.057", "side": "sell"}],
                       "instFamily": "DYDX-USDT", "instId": "DYDX-USDT-SWAP",
                       "instType": "SWAP", "uly": "DYDX-USDT"}]}  # fmt: skip
    (event,) = source.parse_ws_messages([orjson.dumps(frame)])
    assert isinstance(event, WsLiquidations) and event.symbol == perp.symbol
    assert event.rows.rows() == [(1692266434010 * NS_PER_MS, "buy", 0.007831, 13000.0, None)]
    # a push with none of the subscribed swaps is no event
    frame["data"] = frame["data"][1:]
    assert source.parse_ws_messages([orjson.dumps(frame)]) == []


def test_bitmex_liquidation_actions() -> None:
    """Only an ``insert`` is a liquidation: stored with its order id, the order's side
    and price, ``leavesQty`` at insert in base (XBTUSD: 1 USD contracts), stamped on
    arrival; the ``partial`` (orders resting before the connection), ``update`` and
    ``delete`` (the order's fills and removal) are not new liquidations."""
    from dccd_core.domain import now_ns

    source = build_source("bitmex")
    perp = DatasetKey.of("bitmex", "BTC/USD:BTC", "liquidations")
    sub = WsSubscription(perp.data_type, (perp.symbol,))
    assert source.ws_url(sub).endswith("/realtime?subscribe=liquidation:XBTUSD")
    order = {"orderID": "98ae1dad-6a3b-51c4-14bd-e076919e9e30", "symbol": "XBTUSD",
             "side": "Buy", "price": 13854.5, "leavesQty": 314930}  # fmt: skip
    partial = {"table": "liquidation", "action": "partial", "keys": ["orderID"],
               "filter": {"symbol": "XBTUSD"}, "data": [{**order, "orderID": "old"}]}  # fmt: skip
    left = {"orderID": order["orderID"], "leavesQty": 305515, "symbol": "XBTUSD"}
    update = {"table": "liquidation", "action": "update", "data": [left]}
    delete = {"table": "liquidation", "action": "delete",
              "data": [{"orderID": order["orderID"], "symbol": "XBTUSD"}]}  # fmt: skip
    insert = {"table": "liquidation", "action": "insert", "data": [order, order]}
    before = now_ns()
    events = source.parse_ws_messages([orjson.dumps(m) for m in (partial, insert, update, delete)])
    (event,) = [e for e in events if isinstance(e, WsLiquidations)]
    assert event.symbol == perp.symbol
    ts = event.rows["ts"].to_list()
    assert before <= ts[0] <= now_ns() and ts[1] == ts[0] + 1  # two equal orders: two rows
    rows = event.rows.drop("ts").rows()
    assert rows == [("buy", 13854.5, 314930 / 13854.5, order["orderID"])] * 2
    with pytest.raises(UnexpectedPayload, match="unknown action"):
        source.parse_ws_messages([orjson.dumps({**insert, "action": "upsert"})])


def test_rest_capability_refused_with_the_one_message() -> None:
    """``dccd backfill`` asks the capability first: the same message as ``backfill``."""
    from dccd_core.domain import Transport

    for exchange in ("binance", "bybit", "okx", "bitmex", "kraken"):
        capability = build_source(exchange).capability
        with pytest.raises(NoCapability, match=f"^{NO_REST_HISTORY}$"):
            capability.require(KEY.data_type, Transport.REST)
