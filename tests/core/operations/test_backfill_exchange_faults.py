"""A backfill through each exchange's own server errors stores what a clean run stores.

Issue #10: one ordinary exchange fault (Binance HTTP 500 ``{"code":-1000,...}``) used to
kill a backfill. Here every native exchange's fake answers a seeded 10% of requests with
that exchange's real error replies (``tests.fakes.<exchange>.ERROR_REPLIES``: Binance
-1000/-1001/-1007/-1008, Bybit 10016/10000, OKX 50001/50026/50004/50013, Kraken
EService:*, Coinbase 5xx, Bitfinex 20060/11000, BitMEX 503 "overloaded"); the store
must hold exactly the rows of a clean run against the same fake, and every injected
fault must have cost exactly one retry (none escaped as an error, none was mistaken
for data). Windows are small and the backoff fast so the seven runs take seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from aiohttp import web

from dccd_core.domain import NS_PER_MS, DatasetKey, ExchangeError, Span, to_ns
from dccd_core.operations.backfill import backfill
from dccd_core.storage import Store
from dccd_core.transport import RetryPolicy
from tests.fakes import binance, bitfinex, bitmex, bybit, coinbase, kraken, okx
from tests.fakes.kit import open_limiter, source_on
from tests.fakes.server import ErrorReply, FaultInjector, exchange_faults, with_faults

FAST = RetryPolicy(attempts=10, base_s=0.002, max_s=0.02)
RATE = 0.10
T0 = to_ns("2024-01-01T00:00:00Z")
T0_MS = T0 // NS_PER_MS


@dataclass(frozen=True)
class Case:
    """One exchange: a fresh fake's app, the dataset and window to backfill, the
    exchange's error replies and any source setting that keeps the run small."""

    app: Callable[[], web.Application]
    key: DatasetKey
    start: int
    end: int
    replies: tuple[ErrorReply, ...]
    tune: Callable[[Any], None] = lambda source: None


def _binance() -> Case:
    start = to_ns("2024-01-02")
    return Case(
        lambda: binance.FakeBinance.default(
            listing_ms=to_ns("2024-01-01") // NS_PER_MS, weight_limit=10**9
        ).app(),
        DatasetKey.of("binance", "BTC/USDT", "trades"),
        start,
        start + 40 * 60 * 10**9,  # ~24k trades, one aggTrades page per 1,000
        binance.ERROR_REPLIES,
    )


def _bybit() -> Case:
    span = Span.parse("1m")
    end = span.floor(bybit.NOW_MS * NS_PER_MS) - 3 * span.ns
    return Case(  # Bybit has no trade history: candles, 1,000 a page
        lambda: bybit.make_app(bybit.FakeBybit()),
        DatasetKey.of("bybit", "BTC/USDT", "ohlc", "1m"),
        end - 25_000 * span.ns,
        end,
        bybit.ERROR_REPLIES,
    )


def _okx() -> Case:
    tape = okx.FakeOkx().tape("BTC-USDT-SWAP")
    return Case(
        lambda: okx.make_app(okx.FakeOkx()),
        DatasetKey.of("okx", "BTC/USDT:USDT", "trades"),
        tape.start_ms * NS_PER_MS,
        tape.end_ms * NS_PER_MS,
        okx.ERROR_REPLIES,
    )


def _kraken() -> Case:
    n = 20_000
    tape = kraken.KrakenFake(n_trades=n).tapes["XXBTZUSD"]
    return Case(
        lambda: kraken.KrakenFake(n_trades=n).app(),
        DatasetKey.of("kraken", "BTC/USD", "trades"),
        kraken.T0_US * 1_000,
        tape[n - 500][1] * 1_000,
        kraken.ERROR_REPLIES,
    )


def _coinbase() -> Case:
    n = 20_000
    tape = coinbase.CoinbaseFake(n_trades=n).tapes["BTC-USD"]
    return Case(
        lambda: coinbase.CoinbaseFake(n_trades=n).app(),
        DatasetKey.of("coinbase", "BTC/USD", "trades"),
        tape[300][1] * 1_000,
        tape[n - 500][1] * 1_000,
        coinbase.ERROR_REPLIES,
    )


def _bitfinex() -> Case:
    end = T0 + 40 * 60 * 10**9

    def tune(source: Any) -> None:
        source.trades_page_limit = 400  # the fake honours any limit; more pages, same logic

    return Case(
        lambda: bitfinex.BitfinexFake(first_ms=T0_MS, last_ms=end // NS_PER_MS).app(),
        DatasetKey.of("bitfinex", "BTC/USD", "trades"),
        T0,
        end,
        bitfinex.ERROR_REPLIES,
        tune,
    )


def _bitmex() -> Case:
    end = T0 + 90 * 60 * 10**9
    return Case(
        lambda: bitmex.BitmexFake(first_ms=T0_MS, last_ms=end // NS_PER_MS).app(),
        DatasetKey.of("bitmex", "BTC/USD:BTC", "trades"),
        T0,
        end,
        bitmex.ERROR_REPLIES,
    )


CASES = {
    "binance": _binance,
    "bybit": _bybit,
    "okx": _okx,
    "kraken": _kraken,
    "coinbase": _coinbase,
    "bitfinex": _bitfinex,
    "bitmex": _bitmex,
}


async def _run(case: Case, root: Path, faults: FaultInjector | None) -> tuple[pl.DataFrame, Any]:
    app = case.app()
    if faults is not None:
        with_faults(app, faults)
    async with source_on(case.key.exchange, app) as source:
        source.http.retry = FAST
        open_limiter(source)  # pacing has its own tests
        case.tune(source)
        store = Store(root)
        await backfill(case.key, start=case.start, end=case.end, store=store, source=source)
    return store.read(case.key), source.http.stats


@pytest.mark.parametrize("exchange", sorted(CASES))
async def test_backfill_through_the_exchanges_own_5xx_equals_a_clean_run(
    exchange: str, tmp_path: Path
) -> None:
    case = CASES[exchange]()
    clean, clean_stats = await _run(case, tmp_path / "clean", None)
    faults = exchange_faults(case.replies, rate=RATE, seed=1)
    faulted, stats = await _run(case, tmp_path / "faulted", faults)
    injected = faults.counts.get("exchange", 0)
    assert clean.height > 1_000 and clean_stats.retries == 0
    assert injected >= 2, f"only {injected} of {faults.requests} requests were faulted"
    assert stats.retries == injected  # each fault retried once, none became data or an error
    order = [c for c in ("ts", "trade_id") if c in clean.columns]
    assert faulted.sort(order).equals(clean.sort(order))


async def test_bitfinex_bad_parameter_in_a_500_fails_at_once_with_its_message() -> None:
    """10020 is documented as a request-parameters error: a permanent fault even though
    Bitfinex sends it with HTTP 500, so it is not retried and says what was wrong."""
    fake = bitfinex.BitfinexFake(first_ms=T0_MS, last_ms=T0_MS + 60_000)
    async with source_on("bitfinex", fake.app()) as source:
        source.http.retry = FAST
        with pytest.raises(ExchangeError, match=r"bitfinex error 10020: limit: invalid"):
            await source.http.get("/v2/trades/tBTCUSD/hist", {"limit": 20_000})
    assert len(fake.requests) == 1 and source.http.stats.retries == 0
