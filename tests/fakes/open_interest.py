"""Fake open-interest history endpoints of Binance USD-M, Bybit and OKX, on the kit.

The wire format as documented (see ``dccd_core/sources/<x>/open_interest.py``):

* Binance ``/futures/data/openInterestHist``: ``period`` 5m..1d, ``limit`` 1..500
  (default 30), ``startTime``/``endTime``, oldest first, the last 30 days only; strings
  for the amounts, a number for ``timestamp``.
* Bybit ``/v5/market/open-interest``: ``intervalTime`` 5min..1d, ``limit`` 1..200
  (default 50), the newest first; all strings.
* OKX ``/api/v5/rubik/stat/contracts/open-interest-history``: ``period`` 5m/1H/...,
  ``begin``/``end`` exclusive, ``limit`` 1..100 (default 100), the newest first, rows
  ``[ts, oi (contracts), oiCcy (base), oiUsd]`` as strings, the latest 1,440 samples of
  the period only.

One truth (``OpenInterest``): a sample per period, every 89th missing (a sampling gap
the exchange has).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import NS_PER_MS
from tests.fakes import server
from tests.fakes.funding import (
    BYBIT_LINEAR,
    binance_unknown,
    market_app,
    okx_unknown,
    okx_window,
    t_now,
)
from tests.fakes.server import OPEN_END, Refusal, get, json_reply, newest_first, routes_app

__all__ = [
    "OI_FAKES",
    "BinanceOpenInterest",
    "BybitOpenInterest",
    "OkxOpenInterest",
    "OpenInterest",
    "OpenInterestFake",
    "oi_app",
]

_DAY_MS = 86_400_000
_PERIOD_MS = {"5m": 300_000, "1h": 3_600_000}


@dataclass
class OpenInterest:
    """Samples of ``[first_ms, last_ms)`` per period label (``5m``, ``1h``)."""

    first_ms: int
    last_ms: int

    def samples(self, period: str, lo_ms: int = 0, hi_ms: int = 2**62) -> list[tuple[int, float]]:
        step = _PERIOD_MS[period]
        start = -(-self.first_ms // step) * step
        return [
            (t, round(80_000 + 5_000 * math.sin(t / 7e7), 3))
            for i, t in enumerate(range(start, self.last_ms, step))
            if i % 89 != 40 and lo_ms <= t <= hi_ms
        ]

    def truth(
        self, period: str, start_ts: int, end_ts: int, *, value: bool, served_from_ms: int = 0
    ) -> pl.DataFrame:
        rows = [s for s in self.samples(period, served_from_ms)
                if start_ts <= s[0] * NS_PER_MS < end_ts]  # fmt: skip
        return pl.DataFrame(
            {"ts": [t * NS_PER_MS for t, _ in rows], "open_interest": [v for _, v in rows],
             "open_interest_value": [round(v * 40_000, 2) if value else None for _, v in rows]},
            schema={"ts": pl.Int64, "open_interest": pl.Float64,
                    "open_interest_value": pl.Float64},
        )  # fmt: skip


@dataclass
class OpenInterestFake(server.SeriesFake):
    """An open-interest endpoint serving ``data``; ``value``: whether its samples carry
    the value in quote (what the store keeps)."""

    data: OpenInterest
    value: bool = False

    @staticmethod
    def served_from_ms() -> int:
        """The oldest sample the endpoint still serves (ms)."""
        return 0


@dataclass
class BinanceOpenInterest(OpenInterestFake):
    value: bool = True

    @staticmethod
    def served_from_ms() -> int:
        return t_now() - 30 * _DAY_MS  # "only the data of the latest 1 month"

    @get("/futures/data/openInterestHist")
    async def history(self, request: web.Request) -> web.Response:
        bad = json_reply({"code": -1130, "msg": "parameter invalid"}, 400)
        ints = {"limit": 30, "startTime": 0, "endTime": OPEN_END}
        limit, start, end = self.window_query(
            request, {"symbol": "BTCUSDT"}, binance_unknown(), ints, bad
        )
        period = request.query.get("period", "")
        if period not in _PERIOD_MS or not 1 <= (limit or 0) <= 500:
            raise Refusal(bad)
        lo = max(start or 0, self.served_from_ms())
        rows = self.data.samples(period, lo, end or 0)[: limit or 0]
        return json_reply([
            {"symbol": "BTCUSDT", "sumOpenInterest": f"{v:.8f}",
             "sumOpenInterestValue": f"{v * 40_000:.8f}", "timestamp": t}
            for t, v in rows
        ])  # fmt: skip


class BybitOpenInterest(OpenInterestFake):
    @get("/v5/market/open-interest")
    async def history(self, request: web.Request) -> web.Response:
        bad = json_reply({"retCode": 10001, "retMsg": "params error", "result": {}})
        ints = {"limit": 50, "startTime": 0, "endTime": OPEN_END}
        limit, start, end = self.window_query(request, BYBIT_LINEAR, bad, ints, bad)
        period = {"5min": "5m", "1h": "1h"}.get(request.query.get("intervalTime", ""))
        if period is None or not 1 <= (limit or 0) <= 200:
            raise Refusal(bad)
        page = newest_first(self.data.samples(period, start or 0, end or 0), limit or 0)
        listed = [{"openInterest": f"{v:.8f}", "timestamp": str(t)} for t, v in page]
        return json_reply({"retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": t_now(),
                           "result": {"symbol": "BTCUSDT", "category": "linear",
                                      "list": listed, "nextPageCursor": ""}})  # fmt: skip


@dataclass
class OkxOpenInterest(OpenInterestFake):
    value: bool = True
    #: contracts of BTC-USDT-SWAP per BTC (ctVal 0.01): ``oi`` is sent, never stored
    contracts_per_base: int = 100

    @staticmethod
    def served_from(period: str) -> int:
        """The oldest of "the latest 1,440 data entries" of ``period`` (ms)."""
        step = _PERIOD_MS[period]
        return (t_now() // step - 1_439) * step

    @get("/api/v5/rubik/stat/contracts/open-interest-history")
    async def history(self, request: web.Request) -> web.Response:
        bad = json_reply({"code": "51000", "msg": "Parameter period error", "data": []})
        ints = {"limit": 100, "begin": None, "end": None}
        limit, begin, end = self.window_query(
            request, {"instId": "BTC-USDT-SWAP"}, okx_unknown(), ints, bad
        )
        period = {"5m": "5m", "1H": "1h"}.get(request.query.get("period", "5m"))
        if period is None or not 1 <= (limit or 0) <= 100:
            raise Refusal(bad)
        lo, hi = okx_window(begin, end)
        page = newest_first(self.data.samples(period, max(lo, self.served_from(period)), hi),
                            limit or 0)  # fmt: skip
        rows = [[str(t), f"{v * self.contracts_per_base:.2f}", f"{v:.8f}", f"{v * 40_000:.2f}"]
                for t, v in page]  # fmt: skip
        return json_reply({"code": "0", "msg": "", "data": rows})


OI_FAKES: dict[str, type] = {
    "binance": BinanceOpenInterest,
    "bybit": BybitOpenInterest,
    "okx": OkxOpenInterest,
}


def oi_app(exchange: str, fake: Any) -> web.Application:
    """The exchange's fake (its market listing) with ``fake``'s open-interest route."""
    return routes_app(fake, app=market_app(exchange, fake.data.first_ms))
