"""Liquidations (stream only): the documented forceOrder frame, rows equal to what the
exchange sent between drops, a dropped connection shown as a gap in coverage and in the
report (never healed from REST), and the refusals of a spot symbol and a backfill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from dccd_core.domain import NO_REST_HISTORY, NS_PER_MS, DatasetKey, NoCapability
from dccd_core.operations import backfill
from dccd_core.operations.stream import stream
from dccd_core.sources.registry import build_source
from dccd_core.sources.ws import WsLiquidations, WsSubscription
from dccd_core.storage import Store, find_holes
from tests.fakes.kit import stream_on
from tests.fakes.liquidations_ws import BybitLiquidationsFake, LiquidationsFake, force_order

PERP = "BTC/USDT:USDT"
KEY = DatasetKey.of("binance", PERP, "liquidations")


def _no_rest(source: Any) -> None:
    """A REST call fails the test: liquidations have no REST history to heal from."""

    async def refuse(request: Any) -> Any:
        raise AssertionError(f"a liquidations stream called REST: {request}")

    source._response = refuse


def _truth(indices: list[int], fake: LiquidationsFake) -> list[tuple[Any, ...]]:
    rows = []
    for i in indices:
        o = force_order(i, fake.t0_ms, fake.step_ms)["o"]
        rows.append((o["T"] * NS_PER_MS, o["S"].lower(), float(o["ap"]), float(o["z"]), None))
    return rows


def _check_sessions(stored: pl.DataFrame, fake: LiquidationsFake) -> None:
    """Each connection's rows are stored as sent: all of them but for the last push or
    two before its cut or the stop (in flight when the TCP connection died: unseen by
    the client, so lost like any liquidation of the gap)."""
    got = {fake.index_of(int(ts)) for ts in stored["ts"]}
    assert stored.height == len(got)
    for sent in fake.sessions:
        kept = [i for i in sent if i in got]
        assert kept == sent[: len(kept)] and len(sent) - len(kept) <= 2, (sent, kept)
    assert stored.rows() == _truth(sorted(got), fake)
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


async def test_rows_equal_truth_without_drops(tmp_path: Path) -> None:
    fake = LiquidationsFake()
    store = Store(tmp_path)
    final = await stream_on(
        fake, "binance", [PERP], "liquidations", store=store, prepare=_no_rest,
        flush_interval_s=0.2, max_runtime_s=1.5,
    )  # fmt: skip
    assert fake.streams == ["btcusdt@forceOrder"]
    assert final.reconnects == 0 and final.unhealed_gaps == 0 and final.healed_gaps == 0
    stored = store.read(KEY).sort("ts")
    assert stored.height > 100
    _check_sessions(stored, fake)
    assert not find_holes(
        KEY, store.coverage(KEY), int(stored["ts"][0]), int(stored["ts"][-1])
    ).holes


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
async def test_dropped_connection_is_an_unhealed_gap(tmp_path: Path, exchange: str) -> None:
    fake = (LiquidationsFake if exchange == "binance" else BybitLiquidationsFake)(drop_every=60)
    store = Store(tmp_path)
    final = await stream_on(
        fake, exchange, [PERP], "liquidations", store=store, prepare=_no_rest,
        flush_interval_s=0.2, max_runtime_s=2.5,
    )  # fmt: skip
    key = DatasetKey.of(exchange, PERP, "liquidations")
    if isinstance(fake, BybitLiquidationsFake):  # every session subscribed again
        assert fake.subscriptions == [["allLiquidation.BTCUSDT"]] * fake.connections
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
    lost = [
        (fake.t0_ms + i * fake.step_ms) * NS_PER_MS
        for i in range(min(fake.sent), max(fake.sent))
        if i not in set(fake.sent)
    ]
    assert lost
    assert all(any(a <= ts < b for a, b in holes) for ts in lost)
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


def test_rest_capability_refused_with_the_one_message() -> None:
    """``dccd backfill`` asks the capability first: the same message as ``backfill``."""
    from dccd_core.domain import Transport

    for exchange in ("binance", "bybit", "kraken"):
        capability = build_source(exchange).capability
        with pytest.raises(NoCapability, match=f"^{NO_REST_HISTORY}$"):
            capability.require(KEY.data_type, Transport.REST)
