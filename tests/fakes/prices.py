"""Fake mark- and index-price candle endpoints of Binance USD-M, Bybit and OKX, on the kit.

The wire format as documented (see ``dccd_core/sources/<x>/prices.py``):

* Binance ``/fapi/v1/markPriceKlines`` (``symbol``) and ``/fapi/v1/indexPriceKlines``
  (``pair``): inclusive ``startTime``/``endTime``, ``limit`` 1..1500, oldest first, kline
  rows whose volume fields are "ignore" strings.
* Bybit ``/v5/market/mark-price-kline`` and ``/v5/market/index-price-kline``: inclusive
  ``start``/``end``, ``limit`` 1..1000, the newest ``limit`` bars up to ``end``, newest
  first; rows of five strings.
* OKX ``/api/v5/market/history-mark-price-candles`` (the swap) and
  ``/api/v5/market/history-index-candles`` (the index, BTC-USDT): exclusive
  ``after``/``before``, ``limit`` up to 100, newest first; rows end with ``confirm``.

One truth per price (``PriceBars``): a bar per span between two times, with a few bars
missing (an exchange's outage), prices as two-decimal strings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import NS_PER_MS
from tests.fakes import server
from tests.fakes.funding import BYBIT_LINEAR, binance_unknown, market_app, okx_unknown, okx_window
from tests.fakes.server import Refusal, get, json_reply, newest_first, routes_app, within

__all__ = [
    "PRICE_FAKES",
    "BinancePrices",
    "BybitPrices",
    "OkxPrices",
    "PriceBars",
    "PricesFake",
    "prices_app",
]

_MS = {"1m": 60_000, "1h": 3_600_000}
Bar = tuple[int, str, str, str, str]


@dataclass
class PriceBars:
    """Bars of ``[first_ms, last_ms)`` per span label (``1m``, ``1h``); every 97th missing."""

    first_ms: int
    last_ms: int
    seed: int
    _cache: dict[str, list[Bar]] = field(default_factory=dict)

    def bars(self, span: str) -> list[Bar]:
        if span not in self._cache:
            step = _MS[span]
            start = -(-self.first_ms // step) * step
            out = []
            for i, t in enumerate(range(start, self.last_ms, step)):
                if i % 97 == 50:
                    continue
                rng = random.Random(f"{self.seed}:{span}:{t}")
                mid = 40_000 + 1_500 * math.sin(t / 5e8)
                o, c = mid + rng.uniform(-20, 20), mid + rng.uniform(-20, 20)
                hi, lo = max(o, c) + rng.uniform(0, 15), min(o, c) - rng.uniform(0, 15)
                out.append((t, f"{o:.2f}", f"{hi:.2f}", f"{lo:.2f}", f"{c:.2f}"))
            self._cache[span] = out
        return self._cache[span]

    def between(self, span: str, lo_ms: int, hi_ms: int) -> list[Bar]:
        """Bars opening in ``[lo_ms, hi_ms]``, oldest first."""
        return [b for b in self.bars(span) if lo_ms <= b[0] <= hi_ms]

    def truth(self, span: str, start_ts: int, end_ts: int) -> pl.DataFrame:
        rows = [b for b in self.bars(span) if start_ts <= b[0] * NS_PER_MS < end_ts]
        return pl.DataFrame(
            {"ts": [b[0] * NS_PER_MS for b in rows],
             **{k: [float(b[i]) for b in rows] for i, k in enumerate(
                 ("open", "high", "low", "close"), start=1)},
             "volume": [None] * len(rows), "quote_volume": [None] * len(rows),
             "trades": [None] * len(rows)},
            schema={"ts": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
                    "close": pl.Float64, "volume": pl.Float64, "quote_volume": pl.Float64,
                    "trades": pl.Int64},
        )  # fmt: skip


@dataclass
class PricesFake(server.SeriesFake):
    """The mark- and index-price candle endpoints of one exchange, serving ``mark`` and
    ``index``: one handler for both routes (the path names which)."""

    mark: PriceBars
    index: PriceBars

    def asked_for(self, request: web.Request) -> tuple[PriceBars, bool]:
        """The bars the request's route serves, and whether they are the mark price's."""
        is_mark = "mark" in request.path.rsplit("/", 1)[-1]  # not the /market/ before it
        return (self.mark if is_mark else self.index), is_mark


class BinancePrices(PricesFake):
    @get("/fapi/v1/markPriceKlines", "/fapi/v1/indexPriceKlines")
    async def klines(self, request: web.Request) -> web.Response:
        bars, is_mark = self.asked_for(request)
        bad = json_reply({"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."},
                         400)  # fmt: skip
        instrument = {"symbol" if is_mark else "pair": "BTCUSDT"}
        ints = dict.fromkeys(("startTime", "endTime", "limit"))
        start, end, limit = self.window_query(request, instrument, binance_unknown(), ints, bad)
        span = request.query.get("interval", "")
        if span not in _MS:
            raise Refusal(binance_unknown())
        if not 1 <= (limit or 500) <= 1500:
            raise Refusal(bad)
        rows = bars.between(span, *within(start, end))[: limit or 500]
        return json_reply([[t, o, h, lo, c, "0", t + _MS[span] - 1, "0", 0, "0", "0", "0"]
                           for t, o, h, lo, c in rows])  # fmt: skip


class BybitPrices(PricesFake):
    _LABELS = {"1": "1m", "60": "1h"}

    @get("/v5/market/mark-price-kline", "/v5/market/index-price-kline")
    async def kline(self, request: web.Request) -> web.Response:
        bars, _ = self.asked_for(request)
        bad = json_reply({"retCode": 10001, "retMsg": "params error", "result": {}})
        unknown = json_reply({"retCode": 10001, "retMsg": "Not supported symbols", "result": {}})
        ints = dict.fromkeys(("start", "end", "limit"))
        start, end, limit = self.window_query(request, BYBIT_LINEAR, unknown, ints, bad)
        span = self._LABELS.get(request.query.get("interval", ""))
        if span is None or not 1 <= (limit or 200) <= 1000:
            raise Refusal(bad)
        page = newest_first(bars.between(span, *within(start, end)), limit or 200)
        listed = [[str(t), o, h, lo, c] for t, o, h, lo, c in page]
        return json_reply({"retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": 0,
                           "result": {"symbol": "BTCUSDT", "category": "linear",
                                      "list": listed}})  # fmt: skip


class OkxPrices(PricesFake):
    _LABELS = {"1m": "1m", "1H": "1h"}

    @get("/api/v5/market/history-mark-price-candles", "/api/v5/market/history-index-candles")
    async def candles(self, request: web.Request) -> web.Response:
        bars, is_mark = self.asked_for(request)
        bad = json_reply({"code": "51000", "msg": "Parameter error", "data": []})
        instrument = {"instId": "BTC-USDT-SWAP" if is_mark else "BTC-USDT"}
        ints = dict.fromkeys(("after", "before", "limit"))
        after, before, limit = self.window_query(request, instrument, okx_unknown(), ints, bad)
        span = self._LABELS.get(request.query.get("bar", ""))
        if span is None or not 1 <= (limit or 100) <= 100:
            raise Refusal(bad)
        page = newest_first(bars.between(span, *okx_window(before, after)), limit or 100)
        return json_reply({"code": "0", "msg": "",
                           "data": [[str(t), o, h, low, c, "1"] for t, o, h, low, c in page]})


PRICE_FAKES: dict[str, type] = {"binance": BinancePrices, "bybit": BybitPrices, "okx": OkxPrices}


def prices_app(exchange: str, fake: Any) -> web.Application:
    """The exchange's fake (its market listing) with ``fake``'s price candle routes."""
    return routes_app(fake, app=market_app(exchange, fake.mark.first_ms))
