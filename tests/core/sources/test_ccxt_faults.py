"""The generic ccxt source through Binance's own server errors (issue #10).

ccxt raises ``OperationFailed`` (not ``NetworkError``) for Binance ``-1000 UNKNOWN`` and
``-1001 DISCONNECTED`` with HTTP 5xx, which the source used to report as a final
``TransportError``; ccxt's "retrying may succeed" branch is ``OperationFailed`` as a whole.
"""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_MS, RetryExhausted, Symbol
from dccd_core.sources.base import Endpoints
from dccd_core.sources.ccxt_source import CcxtSource
from dccd_core.transport.retry import RetryPolicy
from tests.fakes import binance
from tests.fakes.binance_quirks import HOUR_MS, BinanceQuirksFake, make_tape
from tests.fakes.server import exchange_faults, serve, with_faults

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, ms
BTC = Symbol.parse("BTC/USDT")
FAST = RetryPolicy(attempts=8, base_s=0.001, max_s=0.01, rate_limit_attempts=3)
#: -1000, -1001 (ccxt: OperationFailed) and -1007 (ccxt: RequestTimeout); ccxt maps -1008
#: to a plain ExchangeError, which stays final here
RETRIED = tuple(r for r in binance.ERROR_REPLIES if r.body["code"] != -1008)


async def test_binance_unknown_and_disconnected_5xx_are_retried_by_the_ccxt_source() -> None:
    fake = BinanceQuirksFake(make_tape(T0), T0, T0 + 6 * HOUR_MS)
    faults = exchange_faults(RETRIED, rate=0.3, seed=3)
    start, end = T0 + 4 * HOUR_MS, T0 + 6 * HOUR_MS
    async with serve(with_faults(fake.app(), faults)) as url:
        source = CcxtSource("binance", Endpoints(url), retry=FAST)
        try:
            cursor, pages = None, []
            for _ in range(200):
                page = await source.fetch_trades_page(
                    BTC, start * NS_PER_MS, end * NS_PER_MS, cursor
                )
                pages.append(page.rows)
                cursor = page.next_cursor
                if cursor is None:
                    break
        finally:
            await source.aclose()
    rows = pl.concat(pages).filter(
        (pl.col("ts") >= start * NS_PER_MS) & (pl.col("ts") < end * NS_PER_MS)
    )
    assert_frame_equal(rows, fake.tape.truth(start, end))
    assert faults.counts["exchange"] >= 2


async def test_a_persistent_binance_unknown_error_ends_in_retry_exhausted() -> None:
    unknown = tuple(r for r in binance.ERROR_REPLIES if r.body["code"] == -1000)
    fake = BinanceQuirksFake(make_tape(T0), T0, T0 + HOUR_MS)
    async with serve(with_faults(fake.app(), exchange_faults(unknown, rate=1.0))) as url:
        source = CcxtSource("binance", Endpoints(url), retry=FAST)
        try:
            with pytest.raises(RetryExhausted, match=r"failed 8 times \(OperationFailed"):
                await source.fetch_symbols()
        finally:
            await source.aclose()
