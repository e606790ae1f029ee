"""A small fake Binance spot REST API whose trade data is built to hit paging edge cases.

It speaks the real endpoints and semantics ccxt's ``binance`` class uses
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api):

* ``GET /api/v3/exchangeInfo`` (and empty ``/fapi/v1``, ``/dapi/v1`` ones, so ccxt's
  default market loading works);
* ``GET /api/v3/klines``: bars with open time in ``[startTime, endTime]``, oldest first,
  at most ``limit`` (default 500, max 1000); prices and volumes as strings;
* ``GET /api/v3/aggTrades``: by ``fromId`` (inclusive, ascending) or by a time window
  ``[startTime, endTime]`` (inclusive) of at most one hour (else code -1127); ``fromId``
  with a time window is refused (-1128). When a window holds more than ``limit``
  trades, real Binance returns the window's *last* trades (binance-spot-api-docs
  issue #10); ``tail_when_full=False`` makes it return the first ones instead;
* ``GET /api/v3/depth``.

The data is deterministic (``TradeTape``), so tests compare against the truth.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from aiohttp import web

from tests.fakes.market import TRADES_SCHEMA
from tests.fakes.server import get, json_reply, routes_app

__all__ = ["BinanceQuirksFake", "TradeTape", "make_tape"]

HOUR_MS = 3_600_000
MINUTE_MS = 60_000


@dataclass
class TradeTape:
    """Aggregate trades sorted by (T, a): ids ``a`` consecutive from ``first_id``."""

    ts_ms: list[int]
    prices: list[float]
    amounts: list[float]
    buyer_maker: list[bool]
    first_id: int = 1

    def truth(self, start_ms: int, end_ms: int) -> pl.DataFrame:
        """The trades of ``[start_ms, end_ms)`` in dccd's trades schema."""
        lo = bisect.bisect_left(self.ts_ms, start_ms)
        hi = bisect.bisect_left(self.ts_ms, end_ms)
        return pl.DataFrame(
            {
                "ts": [t * 1_000_000 for t in self.ts_ms[lo:hi]],
                "trade_id": [str(self.first_id + i) for i in range(lo, hi)],
                "price": self.prices[lo:hi],
                "amount": self.amounts[lo:hi],
                "side": ["sell" if m else "buy" for m in self.buyer_maker[lo:hi]],
            },
            schema=TRADES_SCHEMA,
        )


def make_tape(start_ms: int, seed: int = 7) -> TradeTape:
    """Six hours of trades from ``start_ms`` with the shapes that break naive paging.

    hour 0: ~2,400 trades in bursts of 1-6 per ms (page seams fall inside a ms);
    hour 1: 1,250 trades all in one ms (more than a 1,000 page), then a few more;
    hours 2-3: nothing (a quiet stretch longer than Binance's one-hour window);
    hour 4: a handful; hour 5: ~1,500 in bursts.
    """
    rng = random.Random(seed)
    ts: list[int] = []

    def bursts(lo: int, hi: int, n: int) -> None:
        while n > 0:
            at = rng.randrange(lo, hi)
            k = min(n, rng.randint(1, 6))
            ts.extend([at] * k)
            n -= k

    bursts(start_ms, start_ms + HOUR_MS, 2_400)
    crowded = start_ms + HOUR_MS + 1_234_567
    ts.extend([crowded] * 1_250)
    bursts(crowded + 1, start_ms + 2 * HOUR_MS, 40)
    bursts(start_ms + 4 * HOUR_MS, start_ms + 5 * HOUR_MS, 7)
    bursts(start_ms + 5 * HOUR_MS, start_ms + 6 * HOUR_MS, 1_500)
    ts.sort()
    n = len(ts)
    prices = [round(40_000 + rng.uniform(-500, 500), 2) for _ in range(n)]
    amounts = [round(rng.uniform(0.0001, 2.0), 4) for _ in range(n)]
    maker = [rng.random() < 0.5 for _ in range(n)]
    return TradeTape(ts, prices, amounts, maker)


def candle(open_ms: int, interval_ms: int) -> list[Any]:
    """A deterministic kline row for the bar opening at ``open_ms`` (Binance's 12 fields)."""
    k = open_ms // interval_ms
    base = 40_000 + (k * 37) % 1_000
    o, c = base + (k % 7), base + (k % 11)
    h, low = max(o, c) + 5, min(o, c) - 5
    v = 1 + (k % 13) * 0.5
    return [
        open_ms, f"{o:.2f}", f"{h:.2f}", f"{low:.2f}", f"{c:.2f}", f"{v:.8f}",
        open_ms + interval_ms - 1, f"{v * base:.8f}", 10 + k % 50, "0.5", "100.0", "0",
    ]  # fmt: skip


_INTERVAL_MS = {"1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "1h": HOUR_MS, "1d": 24 * HOUR_MS}


@dataclass
class BinanceQuirksFake:
    """The app and its truth. ``candle_holes`` are bar open times (ms) the fake omits;
    candles exist from ``candles_from_ms``; ``requests`` logs every query string."""

    tape: TradeTape
    candles_from_ms: int
    candles_to_ms: int
    tail_when_full: bool = True
    candle_holes: set[int] = field(default_factory=set)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def truth_candles(self, interval: str, start_ms: int, end_ms: int) -> list[list[Any]]:
        step = _INTERVAL_MS[interval]
        first = max(start_ms, self.candles_from_ms)
        first += (-first) % step
        return [
            candle(t, step)
            for t in range(first, min(end_ms, self.candles_to_ms), step)
            if t not in self.candle_holes
        ]

    def app(self) -> web.Application:
        return routes_app(self)

    # -- helpers -----------------------------------------------------------------

    def _log(self, request: web.Request) -> dict[str, str]:
        query = dict(request.query)
        self.requests.append((request.path, query))
        return query


    def _error(self, code: int, msg: str) -> web.Response:
        return json_reply({"code": code, "msg": msg}, status=400)

    def _limit(self, query: dict[str, str]) -> int | web.Response:
        limit = int(query.get("limit", 500))
        if not 1 <= limit <= 1000:
            return self._error(-1100, "Illegal characters found in parameter 'limit'.")
        return limit

    # -- endpoints ---------------------------------------------------------------

    @get("/api/v3/exchangeInfo")
    async def _exchange_info(self, request: web.Request) -> web.Response:
        self._log(request)
        symbols = [
            _market("BTCUSDT", "BTC", "USDT"),
            _market("ETHUSDT", "ETH", "USDT"),
            _market("ETHBTC", "ETH", "BTC"),
        ]
        return json_reply(
            {
                "timezone": "UTC",
                "serverTime": self.candles_to_ms,
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                     "intervalNum": 1, "limit": 6000},
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )  # fmt: skip

    @get("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo")
    async def _empty_info(self, request: web.Request) -> web.Response:
        self._log(request)
        return json_reply({"timezone": "UTC", "serverTime": 0, "rateLimits": [], "symbols": []})

    @get("/api/v3/klines")
    async def _klines(self, request: web.Request) -> web.Response:
        query = self._log(request)
        if query.get("symbol") != "BTCUSDT":
            return self._error(-1121, "Invalid symbol.")
        interval = query.get("interval", "")
        if interval not in _INTERVAL_MS:
            return self._error(-1120, "Invalid interval.")
        limit = self._limit(query)
        if isinstance(limit, web.Response):
            return limit
        start = int(query.get("startTime", self.candles_from_ms))
        end = int(query.get("endTime", self.candles_to_ms))
        rows = self.truth_candles(interval, start, end + 1)
        return json_reply(rows[:limit])

    @get("/api/v3/aggTrades")
    async def _agg_trades(self, request: web.Request) -> web.Response:
        query = self._log(request)
        if query.get("symbol") != "BTCUSDT":
            return self._error(-1121, "Invalid symbol.")
        limit = self._limit(query)
        if isinstance(limit, web.Response):
            return limit
        tape = self.tape
        has_window = "startTime" in query or "endTime" in query
        if "fromId" in query:
            if has_window:
                return self._error(-1128, "Combination of optional parameters invalid.")
            lo = max(0, int(query["fromId"]) - tape.first_id)
            idx = range(lo, min(lo + limit, len(tape.ts_ms)))
        elif has_window:
            start = int(query.get("startTime", 0))
            end = int(query.get("endTime", start + HOUR_MS))
            if "startTime" not in query:
                start = end - HOUR_MS
            if end - start > HOUR_MS:
                return self._error(-1127, "More than 1 hours between startTime and endTime.")
            lo = bisect.bisect_left(tape.ts_ms, start)
            hi = bisect.bisect_right(tape.ts_ms, end)
            if hi - lo > limit:
                lo, hi = (hi - limit, hi) if self.tail_when_full else (lo, lo + limit)
            idx = range(lo, hi)
        else:
            idx = range(max(0, len(tape.ts_ms) - limit), len(tape.ts_ms))
        rows = [
            {
                "a": tape.first_id + i,
                "p": f"{tape.prices[i]:.2f}",
                "q": f"{tape.amounts[i]:.4f}",
                "f": 10 * (tape.first_id + i),
                "l": 10 * (tape.first_id + i),
                "T": tape.ts_ms[i],
                "m": tape.buyer_maker[i],
                "M": True,
            }
            for i in idx
        ]
        return json_reply(rows)

    @get("/api/v3/depth")
    async def _depth(self, request: web.Request) -> web.Response:
        query = self._log(request)
        if query.get("symbol") != "BTCUSDT":
            return self._error(-1121, "Invalid symbol.")
        limit = int(query.get("limit", 100))
        return json_reply(
            {
                "lastUpdateId": 1027024,
                "bids": [[f"{40000 - i * 0.5:.2f}", f"{1 + i:.8f}"] for i in range(limit)],
                "asks": [[f"{40000.5 + i * 0.5:.2f}", f"{2 + i:.8f}"] for i in range(limit)],
            }
        )


def _market(symbol: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
             "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00",
             "stepSize": "0.00001"},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_MAKER"],
    }  # fmt: skip
