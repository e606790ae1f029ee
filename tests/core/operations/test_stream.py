"""operations.stream against a fake Binance that drops, skips and breaks its book."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from dccd_core.domain import DatasetKey, ms_to_ns
from dccd_core.operations.stream import FlushReport, stream
from dccd_core.sources.base import Source
from dccd_core.sources.registry import build_source
from dccd_core.storage import SegmentPolicy, Store
from dccd_core.storage import segments as segments_module
from dccd_core.transport.ws import WsConfig
from tests.core.storage.helpers import trades
from tests.fakes.binance_ws import BinanceStreamFake
from tests.fakes.kit import FAST_WS, checked_book_samples, source_on, stream_on

TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")
BOOK = DatasetKey.of("binance", "BTC/USDT", "book")


def _source(fake: BinanceStreamFake) -> AbstractAsyncContextManager[Source]:
    return source_on("binance", fake.app())


@pytest.fixture
def dropping() -> BinanceStreamFake:
    return BinanceStreamFake(per_ms=2, drop_every=700, skip_rate=0.005, seed=3)


async def test_trades_equal_truth_across_drops_and_skips(
    dropping: BinanceStreamFake, tmp_path: Path
) -> None:
    fake = dropping
    store = Store(tmp_path)
    reports: list[FlushReport] = []
    final = await stream_on(
        fake, "binance", ["BTC/USDT"], "trades", store=store, flush_interval_s=0.3,
        max_runtime_s=3.0, on_flush=reports.append,
    )  # fmt: skip
    stored = store.read(TRADES)
    ids = stored.get_column("trade_id").cast(pl.Int64)
    # several drops and skips happened, and every one was healed
    assert fake.drops >= 3 and final.reconnects >= 3
    assert len(fake.skipped) >= 3
    assert final.healed_gaps >= fake.drops + 1
    assert final.unhealed_gaps == 0
    # none stored twice, ids contiguous, equal to the truth of the window
    assert ids.is_unique().all()
    assert ids.max() - ids.min() + 1 == stored.height  # type: ignore[operator]
    first_ms, last_ms = stored["ts"][0] // 1_000_000, stored["ts"][-1] // 1_000_000
    truth = [r for r in fake.truth(first_ms, last_ms) if int(r["a"]) <= ids.max()]  # type: ignore[operator]
    truth = [r for r in truth if int(r["a"]) >= ids.min()]  # type: ignore[operator]
    assert ids.to_list() == [r["a"] for r in truth]
    assert stored["ts"].to_list() == [ms_to_ns(r["T"]) for r in truth]
    assert stored["price"].to_list() == [float(r["p"]) for r in truth]
    assert stored["side"].to_list() == ["sell" if r["m"] else "buy" for r in truth]
    skipped_in_window = [a for a in fake.skipped if ids.min() <= a <= ids.max()]  # type: ignore[operator]
    assert set(skipped_in_window) <= set(ids.to_list())
    # the reports add up and end with a final one
    assert reports[-1].final and sum(r.rows for r in reports) >= stored.height
    assert final.lag_s is not None and final.lag_s < 5
    assert store.coverage(TRADES).start is not None


async def test_flushes_append_segments_with_websocket_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    original = segments_module.write_parquet_atomic

    def spy(path: Path, *args: object, **kwargs: object) -> None:
        written.append(path.name)
        original(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(segments_module, "write_parquet_atomic", spy)
    fake = BinanceStreamFake(per_ms=1)
    store = Store(tmp_path, segments=SegmentPolicy(min_base_rows=100, fanout=3, max_segments=6))
    await stream_on(
        fake, "binance", ["BTC/USDT"], "trades", store=store, flush_interval_s=0.1,
        max_runtime_s=1.5,
    )
    assert any(".seg-" in name for name in written)  # small flushes went to segments
    glob = pl.read_parquet(str(tmp_path / "trades" / "**" / "*.parquet"))
    ids = glob.get_column("trade_id").cast(pl.Int64)
    assert ids.is_unique().all() and ids.max() - ids.min() + 1 == ids.len() > 500  # type: ignore[operator]
    for path in (tmp_path / "trades").rglob("*.parquet"):
        meta = pq.read_schema(path).metadata
        assert meta[b"source"] == b"binance" and meta[b"transport"] == b"ws", path


async def test_restart_heals_from_the_stored_last_row(tmp_path: Path) -> None:
    fake = BinanceStreamFake(per_ms=1)
    store = Store(tmp_path)
    async with _source(fake) as source:

        async def run() -> FlushReport:
            return await stream(
                "binance", ["BTC/USDT"], "trades", store=store, source=source,
                flush_interval_s=0.2, max_runtime_s=0.6, ws_config=FAST_WS,
            )  # fmt: skip

        await run()
        await asyncio.sleep(0.5)  # trades happen while nothing listens
        second = await run()
    ids = store.read(TRADES).get_column("trade_id").cast(pl.Int64)
    assert second.healed_rows >= 400
    assert ids.is_unique().all() and ids.max() - ids.min() + 1 == ids.len()  # type: ignore[operator]


async def test_stop_event_flushes_everything(tmp_path: Path) -> None:
    fake = BinanceStreamFake(per_ms=1)
    store = Store(tmp_path)
    stop = asyncio.Event()
    async with _source(fake) as source:
        task = asyncio.create_task(stream(
            "binance", ["BTC/USDT"], "trades", store=store, source=source, flush_interval_s=60.0,
            stop=stop, ws_config=FAST_WS,
        ))
        await asyncio.sleep(0.8)
        stop.set()
        final = await asyncio.wait_for(task, 5)
    assert final.final and final.total_rows == store.read(TRADES).height > 300


async def test_cancel_flushes_everything(tmp_path: Path) -> None:
    fake = BinanceStreamFake(per_ms=1)
    store = Store(tmp_path)
    seen: list[FlushReport] = []
    async with _source(fake) as source:
        task = asyncio.create_task(stream(
            "binance", ["BTC/USDT"], "trades", store=store, source=source, flush_interval_s=60.0,
            on_flush=seen.append, ws_config=FAST_WS,
        ))
        await asyncio.sleep(0.8)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen and seen[-1].final
    assert seen[-1].total_rows == store.read(TRADES).height > 300


async def test_book_resyncs_on_gap_and_never_stores_a_crossed_book(tmp_path: Path) -> None:
    fake = BinanceStreamFake(gap_at=(1101,), crossed_at=(1201,), depth_interval_s=0.005)
    store = Store(tmp_path)
    final = await stream_on(
        fake, "binance", ["BTC/USDT"], "book", store=store, book_depth=10, snapshot_interval_s=0.05,
        flush_interval_s=0.3, max_runtime_s=2.5,
    )
    book = store.read(BOOK)
    assert book.height > 0
    best = book.filter(pl.col("level") == 0).pivot(on="side", index="ts", values="price")
    assert (best["bid"] < best["ask"]).all()
    # a resync for the gap and one for the crossed book, each with a fresh REST snapshot
    assert final.resyncs >= 2
    assert fake.depth_requests >= 3
    # every stored snapshot equals the truth at its update id (ts = t0 + u ms)
    # (a snapshot sampled right after a REST snapshot carries the receive time instead)
    checked = checked_book_samples(
        book, lambda ts: fake.book_history.get(ts // 1_000_000 - fake.t0_ms)
    )
    assert checked >= 10


async def test_an_unreachable_stream_says_so_at_once_and_reports_never(tmp_path: Path) -> None:
    """Nothing listens on port 1: the first refused attempt is reported at once, with
    its error and the retry; the reports say not connected and no message, ever."""
    lines: list[tuple[float, str]] = []
    reports: list[FlushReport] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    final = await stream(
        "binance",
        ["BTC/USDT"],
        "trades",
        store=Store(tmp_path),
        rest_url="http://127.0.0.1:1",
        ws_url="ws://127.0.0.1:1",
        flush_interval_s=0.3,
        max_runtime_s=1.2,
        on_flush=reports.append,
        on_status=lambda line, status: lines.append((loop.time() - started, line)),
        ws_config=WsConfig(backoff_base_s=0.1, backoff_cap_s=0.2),
    )
    first_s, first = lines[0]
    assert first_s < 0.5, lines
    assert first.startswith("binance trades BTC/USDT: not connected (last error: ")
    assert "connection refused by ws://127.0.0.1:1/..." in first
    assert "retrying in " in first and "1 attempt)" in first
    assert len(lines) >= 3 and "attempts)" in lines[-1][1]
    assert reports and all(not r.connected and r.messages == 0 for r in reports)
    assert final.final and final.last_message_age_s is None and final.total_rows == 0
    assert "connection refused" in final.last_error and final.connect_attempts >= 3
    assert final.down_s is not None and final.down_s >= 1.0


async def test_a_healthy_stream_reports_connected_and_its_last_message(tmp_path: Path) -> None:
    fake = BinanceStreamFake(per_ms=1)
    lines: list[str] = []
    final = await stream_on(
        fake, "binance", ["BTC/USDT"], "trades", store=Store(tmp_path), flush_interval_s=0.2,
        max_runtime_s=0.8, on_status=lambda line, status: lines.append(line),
    )
    assert lines == ["binance trades BTC/USDT: connected (session 1, reconnects 0)"]
    assert final.connected and final.messages > 100 and final.connect_attempts == 0
    assert final.last_message_age_s is not None and final.last_message_age_s < 0.5


async def test_ids_missing_inside_the_first_batch_are_healed(tmp_path: Path) -> None:
    """Frames are parsed once per flush, so a symbol's first batch can hold seconds of
    trades: an id the exchange skipped inside it is a gap like any later one (it was
    missed when only a batch's first id was compared with the previous batch)."""
    from dccd_core.domain import Symbol
    from dccd_core.domain.types import DataType
    from dccd_core.operations.stream import _Streamer
    from dccd_core.sources.ws import WsSubscription, WsTrades

    source = build_source("binance", rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    try:
        symbol = Symbol.parse("BTC/USDT")
        streamer = _Streamer(
            source, WsSubscription(DataType.TRADES, (symbol,)), Store(tmp_path), max_heal_s=60
        )
        healed: list[tuple[int, int]] = []

        async def heal(_symbol: Symbol, _state: object, start: int, end: int) -> None:
            healed.append((start, end))

        streamer.heal = heal  # type: ignore[method-assign]
        t0 = ms_to_ns(1_700_000_000_000)
        ids, ts = [10, 11, 13, 14, 17], [t0 + i * 1_000_000 for i in range(5)]
        rows = trades([str(i) for i in ids], ts)
        await streamer.on_trades(WsTrades(symbol, rows))
        assert healed == [(ts[1], ts[2] + 1), (ts[3], ts[4] + 1)]
        healed.clear()
        nxt = rows.with_columns(pl.Series("trade_id", ["19", "20", "21", "22", "23"]),
                                pl.col("ts") + 10_000_000)
        await streamer.on_trades(WsTrades(symbol, nxt))  # the seam with the batch before
        assert healed == [(ts[4], ts[0] + 10_000_000 + 1)]
    finally:
        await source.aclose()
