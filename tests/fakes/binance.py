"""A fake Binance (spot ``/api/v3`` and USD-M ``/fapi/v1``) on loopback.

It speaks Binance's real protocol, quirks included: klines rows as mixed JSON arrays
(prices as strings, times as numbers), ``startTime``/``endTime`` inclusive, ``limit``
default 500 and max 1000, aggTrades by time (a window must be < 1 h) or by ``fromId``,
errors as ``{"code": -1121, "msg": "Invalid symbol."}``, request weights counted per
window and reported in ``X-MBX-USED-WEIGHT-1M``, 429 + ``Retry-After`` past the
limit, 418 (a ban) for a client that keeps sending during a 429 pause.

The data are generated lazily and arithmetically from a seed, so a year of 1m candles
or 10M trades cost nothing until asked for, and the truth is known exactly:

* candles: one bar per span from the listing time, except "holes" (bars whose hash
  hits ``1 / hole_every``, plus any explicit ``holes_ms``);
* trades: aggregate id ``a = first_id + k``; time grows ``den / num`` ms per trade,
  plus a quiet gap of ``quiet_ms`` every ``quiet_every`` trades (hours with no trade),
  and every ``burst_every`` trades a burst of ``burst_len`` trades sharing ONE
  millisecond (longer than a 1000-row page, so it always crosses a page boundary).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from aiohttp import web

from tests.fakes.binance_market import SPAN_MS, MarketData
from tests.fakes.server import ErrorReply, FaultInjector, get, json_reply, routes_app

__all__ = ["FakeBinance", "MarketData"]

#: Binance's own 5xx bodies (the 10xx "server or network" codes of its error list):
#: execution status unknown, so a client must retry (``FaultInjector`` kind "exchange").
ERROR_REPLIES = (
    ErrorReply(
        500, {"code": -1000, "msg": "An unknown error occurred while processing the request."}
    ),
    ErrorReply(
        503,
        {
            "code": -1001,
            "msg": "Internal error; unable to process your request. Please try again.",
        },
    ),
    ErrorReply(
        503,
        {
            "code": -1007,
            "msg": "Timeout waiting for response from backend server. "
            "Send status unknown; execution status unknown.",
        },
    ),
    ErrorReply(
        503,
        {
            "code": -1008,
            "msg": "Server is currently overloaded with other requests. "
            "Please try again in a few minutes.",
        },
    ),
)


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_reply({"code": code, "msg": msg}, status, headers)


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


@dataclass
class FakeBinance:
    """The fake exchange; ``app()`` builds the aiohttp app, the rest states the truth.

    ``markets`` maps ``("spot" | "usdm", "BTCUSDT")`` to its ``MarketData``.
    ``weight_limit`` per ``window_s`` (Binance: 6000 per 60 s), shared by both markets.
    """

    markets: dict[tuple[str, str], MarketData] = field(default_factory=dict)
    weight_limit: int = 6000
    window_s: float = 60.0
    ban_after: int = 5
    ban_s: float = 2.0
    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    faults: FaultInjector | None = None
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    keep_log: bool = False

    def __post_init__(self) -> None:
        self._window: int | None = None
        self._used = 0
        self._retry_until = 0.0
        self._banned_until = 0.0
        self._violations = 0

    @classmethod
    def default(cls, *, listing_ms: int, seed: int = 7, **kwargs: Any) -> FakeBinance:
        """BTCUSDT and ETHUSDT spot, BTCUSDT perpetual, all listed at ``listing_ms``."""
        markets = {
            ("spot", "BTCUSDT"): MarketData(seed, listing_ms),
            ("spot", "ETHUSDT"): MarketData(seed + 1, listing_ms),
            ("usdm", "BTCUSDT"): MarketData(seed + 2, listing_ms),
        }
        return cls(markets=markets, **kwargs)

    @property
    def data_requests(self) -> int:
        """Requests for data pages (klines, aggTrades, depth), not metadata."""
        return self.requests["klines"] + self.requests["aggTrades"] + self.requests["depth"]

    # -- truth -----------------------------------------------------------------

    def market(self, symbol: str = "BTCUSDT", market: str = "spot") -> MarketData:
        return self.markets[(market, symbol)]

    def truth_candles(
        self,
        start_ns: int,
        end_ns: int,
        interval: str = "1m",
        symbol: str = "BTCUSDT",
        market: str = "spot",
    ) -> pl.DataFrame:
        """Every bar opening in ``[start_ns, end_ns)``, ohlc schema."""
        data = self.market(symbol, market)
        opens = data.bar_opens(interval, -(-start_ns // 1_000_000), -(-end_ns // 1_000_000) - 1)
        return data.candles_frame(interval, opens)

    def truth_trades(
        self, start_ns: int, end_ns: int, symbol: str = "BTCUSDT", market: str = "spot"
    ) -> pl.DataFrame:
        """Every aggregate trade with ts in ``[start_ns, end_ns)``, trades schema."""
        data = self.market(symbol, market)
        k0 = data.first_k_at(-(-start_ns // 1_000_000))
        k1 = data.first_k_at(-(-end_ns // 1_000_000))
        ks = np.arange(k0, k1, dtype=np.int64)
        if data.replays:
            ks = ks[~np.isin(ks, np.fromiter(data.replays, dtype=np.int64))]
        return data.trades_frame(ks)

    # -- weights ---------------------------------------------------------------

    def _charge(self, weight: int) -> dict[str, str]:
        now = time.time()
        if now < self._banned_until:
            raise _Refused(
                _error(
                    418,
                    -1003,
                    "Way too much request weight used; IP banned.",
                    {"Retry-After": str(math.ceil(self._banned_until - now))},
                )
            )
        if now < self._retry_until:
            self._violations += 1
            if self._violations > self.ban_after:
                self._banned_until = now + self.ban_s
                raise _Refused(
                    _error(
                        418,
                        -1003,
                        "Way too much request weight used; IP banned.",
                        {"Retry-After": str(math.ceil(self.ban_s))},
                    )
                )
        window = int(now // self.window_s)
        if window != self._window:
            self._window, self._used = window, 0
        self._used += weight
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._used)}
        if self._used > self.weight_limit:
            window_end = (window + 1) * self.window_s
            self._retry_until = window_end
            headers["Retry-After"] = str(max(1, math.ceil(window_end - now)))
            raise _Refused(
                _error(
                    429,
                    -1003,
                    "Too much request weight used; please use WebSocket Streams for live "
                    "updates to avoid polling the API.",
                    headers,
                )
            )
        self._violations = 0
        return headers

    # -- handlers --------------------------------------------------------------

    def _market_of(self, request: web.Request) -> tuple[str, MarketData]:
        market = "usdm" if request.path.startswith("/fapi/") else "spot"
        symbol = request.query.get("symbol")
        if not symbol:
            raise _Refused(
                _error(
                    400,
                    -1102,
                    "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
                )
            )
        data = self.markets.get((market, symbol))
        if data is None:
            raise _Refused(_error(400, -1121, "Invalid symbol."))
        return market, data

    @staticmethod
    def _int(request: web.Request, name: str) -> int | None:
        raw = request.query.get(name)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise _Refused(
                _error(400, -1100, f"Illegal characters found in parameter '{name}'.")
            ) from None

    def _limit(self, request: web.Request, maximum: int = 1000) -> int:
        limit = self._int(request, "limit")
        if limit is None:
            return 500
        if not 1 <= limit <= maximum:
            raise _Refused(_error(400, -1130, "Data sent for parameter 'limit' is not valid."))
        return limit

    @get("/api/v3/klines", "/fapi/v1/klines")
    async def klines(self, request: web.Request) -> web.Response:
        market, data = self._market_of(request)
        interval = request.query.get("interval", "")
        if interval not in SPAN_MS:
            raise _Refused(_error(400, -1120, "Invalid interval."))
        limit = self._limit(request, 1500 if market == "usdm" else 1000)
        weight = 2 if market == "spot" else (1 if limit < 100 else 2 if limit < 500 else 5)
        headers = self._charge(weight)
        self.requests["klines"] += 1
        now = self.now_ms()
        start = self._int(request, "startTime")
        end = self._int(request, "endTime")
        end = now if end is None else min(end, now)
        step = SPAN_MS[interval]
        if start is None:
            lo = max(data.listing_ms - step, end - step * (limit + data.hole_every))
            opens = data.bar_opens(interval, lo, end)[-limit:]
        else:
            # enough bars to fill the page despite holes, never past ``end``
            start = max(start, data.listing_ms - step)
            hi = min(end, start + step * (limit + limit // 10 + 20))
            opens = data.bar_opens(interval, start, hi)[:limit]
        body = data.klines_body(interval, opens)
        return web.Response(body=body, content_type="application/json", headers=headers)

    @get("/api/v3/aggTrades", "/fapi/v1/aggTrades")
    async def agg_trades(self, request: web.Request) -> web.Response:
        market, data = self._market_of(request)
        limit = self._limit(request)
        headers = self._charge(4 if market == "spot" else 20)
        self.requests["aggTrades"] += 1
        from_id = self._int(request, "fromId")
        start = self._int(request, "startTime")
        end = self._int(request, "endTime")
        now = self.now_ms()
        k_now = data.first_k_at(now + 1)  # trades with ts <= now exist
        if from_id is not None:
            if start is not None or end is not None:
                raise _Refused(_error(400, -1128, "Combination of optional parameters invalid."))
            k0 = max(0, from_id - data.first_id)
            k1 = min(k0 + limit, k_now)
        elif start is not None or end is not None:
            if start is not None and end is not None and end - start >= 3_600_000:
                raise _Refused(
                    _error(400, -1127, "More than 1 hours between startTime and endTime.")
                )
            if start is None:
                assert end is not None
                start = end - 3_600_000 + 1
            if end is None:
                end = start + 3_600_000 - 1
            k0 = data.first_k_at(start)
            k1 = min(data.first_k_at(end + 1), k0 + limit, k_now)
        else:
            k1 = k_now
            k0 = max(0, k1 - limit)
        ks = np.arange(k0, max(k0, k1), dtype=np.int64)
        body = data.agg_body(ks)
        return web.Response(body=body, content_type="application/json", headers=headers)

    @get("/api/v3/depth", "/fapi/v1/depth")
    async def depth(self, request: web.Request) -> web.Response:
        market, _ = self._market_of(request)
        limit = self._int(request, "limit") or 100
        allowed = (5, 10, 20, 50, 100, 500, 1000) + ((5000,) if market == "spot" else ())
        if limit not in allowed:
            raise _Refused(_error(400, -1130, "Data sent for parameter 'limit' is not valid."))
        if market == "spot":
            weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        else:
            weight = 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        headers = self._charge(weight)
        self.requests["depth"] += 1
        now = self.now_ms()
        mid = 2_000_000 + (now // 1000) % 1000
        bids = [[f"{(mid - i) / 100:.2f}", f"{(i + 1) / 1000:.3f}"] for i in range(limit)]
        asks = [[f"{(mid + 1 + i) / 100:.2f}", f"{(i + 2) / 1000:.3f}"] for i in range(limit)]
        payload: dict[str, Any] = {"lastUpdateId": now, "bids": bids, "asks": asks}
        if market == "usdm":
            payload = {"lastUpdateId": now, "E": now, "T": now - 3, "bids": bids, "asks": asks}
        return json_reply(payload, headers=headers)

    @get("/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo")
    async def exchange_info(self, request: web.Request) -> web.Response:
        market = "usdm" if request.path.startswith("/fapi/") else "spot"
        headers = self._charge(20 if market == "spot" else 1)
        self.requests["exchangeInfo"] += 1
        symbols = []
        for mkt, native in self.markets:
            if mkt != market:
                continue
            base, quote = native[:-4], native[-4:]
            entry: dict[str, Any] = {
                "symbol": native,
                "status": "TRADING",
                "baseAsset": base,
                "quoteAsset": quote,
            }
            if market == "usdm":
                entry.update(pair=native, contractType="PERPETUAL", marginAsset=quote)
            symbols.append(entry)
        payload = {"timezone": "UTC", "serverTime": self.now_ms(), "symbols": symbols}
        return json_reply(payload, headers=headers)

    @web.middleware
    async def _refusals(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.keep_log:
            self.log.append((request.path, dict(request.query)))
        try:
            response: web.StreamResponse = await handler(request)
        except _Refused as refused:
            response = refused.response
        self.statuses[response.status] += 1
        return response

    def app(self) -> web.Application:
        middlewares = [self.faults.middleware] if self.faults is not None else []
        return routes_app(self, middlewares=[*middlewares, self._refusals])
