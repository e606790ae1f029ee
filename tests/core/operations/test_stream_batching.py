"""Frames arriving one by one (as exchanges send trades) are parsed in batches.

A stream used to wake and run its columnar work (parse to polars, plausibility checks,
buffering) for every read, i.e. every handful of messages: ~20x the CPU per message of
a burst. Now frames wait, unparsed, in the client until the flush (or 5,000 of them);
the rows written must be the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import DatasetKey
from dccd_core.sources.ws import WsEvent
from dccd_core.storage import Store
from dccd_core.transport.ws import Connected, WsClient
from tests.fakes.binance_ws import BinanceStreamFake
from tests.fakes.kit import FAST_WS, stream_on
from tests.fakes.server import serve

TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")


async def test_single_frames_are_parsed_once_per_flush_and_stored_whole(
    tmp_path: Path,
) -> None:
    # 1,000 trades/s, each its own frame, sent every 5 ms: ~5 frames per read
    fake = BinanceStreamFake(per_ms=1, trade_tick_s=0.005)
    store = Store(tmp_path)
    batches: list[int] = []

    def count_batches(source: Any) -> None:
        parse = source.parse_ws_messages

        def counting(raws: Sequence[str | bytes]) -> list[WsEvent]:
            batches.append(len(raws))
            return parse(raws)  # type: ignore[no-any-return]

        source.parse_ws_messages = counting

    final = await stream_on(
        fake, "binance", ["BTC/USDT"], "trades", store=store, prepare=count_batches,
        flush_interval_s=0.5, max_runtime_s=2.6,
    )
    stored = store.read(TRADES)
    assert stored.height > 1000 and final.reconnects == 0
    first_ms, last_ms = int(stored["ts"][0]) // 1_000_000, int(stored["ts"][-1]) // 1_000_000
    truth = [str(r["a"]) for r in fake.truth(first_ms, last_ms)]
    assert stored["trade_id"].to_list() == truth  # every trade once, in order
    assert stored.get_column("ts").is_sorted()
    # parsed once per flush (5 + the stop's), not once per read (~500 reads)
    assert len(batches) <= final.flushes + 2, batches
    assert sum(batches) / len(batches) >= 100
    assert final.messages >= stored.height  # trades, not parsed batches


async def _frames_app(count: int, every_s: float) -> web.Application:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(0.3)  # the client has taken its Connected marker
        for i in range(count):
            await ws.send_str(f'{{"n": {i}}}')
            await asyncio.sleep(every_s)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


async def test_client_wait_sleeps_until_enough_frames_are_pending() -> None:
    async with serve(await _frames_app(40, 0.01)) as origin:
        url = origin.replace("http", "ws") + "/ws"
        async with WsClient(url, config=FAST_WS) as client:
            assert await client.wait(1_000, 5.0)  # a (re)connect is due at once
            [marker] = await client.next_batch(timeout_s=0.0)
            assert isinstance(marker, Connected) and not client.due(1)
            started = time.monotonic()
            assert await client.wait(30, 5.0)
            # frames came one by one every 10 ms: nobody woke before the 30th
            assert client.pending >= 30 and time.monotonic() - started >= 0.2
            frames = await client.next_batch(max_items=client.pending, timeout_s=0.0)
            assert frames[0] == '{"n": 0}' and len(frames) >= 30
            assert client.last_frame_at is not None
            # fewer than asked by the timeout: not due, nothing taken
            assert not await client.wait(1_000, 0.3)
            assert 0 < client.pending < 1_000
    assert pl.Series(frames).str.contains('"n"').all()
