"""Fake funding-history endpoints of Binance USD-M, Bybit, OKX and BitMEX, on the kit.

Only the wire format lives here (paths, parameters, limits, page order, shapes), from
the exchanges' documentation as quoted in ``dccd_core/sources/<x>/funding.py``:

* Binance ``/fapi/v1/fundingRate``: ``startTime``/``endTime`` inclusive ms, ``limit``
  1..1000, oldest first from ``startTime``; ``fundingRate`` and ``markPrice`` strings
  (``""`` on the oldest rows), ``fundingTime`` a number, stamped a few ms late.
* Bybit ``/v5/market/funding/history``: ``startTime`` alone refused (10001), ``limit``
  1..200, the newest ``limit`` rows up to ``endTime``, newest first; all strings.
* OKX ``/api/v5/public/funding-rate-history``: ``before``/``after`` exclusive, ``limit``
  up to 400, newest first, the last 3 months only; all strings, ``realizedRate`` beside
  ``fundingRate``.
* BitMEX ``/api/v1/funding``: ISO ``startTime``/``endTime``, ``count`` up to 1000,
  ``reverse``; rates as JSON numbers, ``fundingInterval`` a timespan on 2000-01-01.

One truth per fake (``FundingHistory``): funding every 8 h with a stretch of hourly
funding (exchanges move volatile contracts to 1 h), deterministic rates. ``funding_app``
mounts a fake's funding route on the exchange's existing fake (its market listing).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import NS_PER_DAY, NS_PER_MS, now_ns
from tests.fakes import binance, bitmex, bybit, okx, server
from tests.fakes.server import Refusal, get, json_reply, newest_first, routes_app, within

__all__ = [
    "FUNDING_FAKES",
    "BinanceFunding",
    "BitmexFunding",
    "BybitFunding",
    "FundingFake",
    "FundingHistory",
    "OkxFunding",
    "funding_app",
    "market_app",
]

_HOUR_MS = 3_600_000


@dataclass
class FundingHistory:
    """Funding events of ``[first_ms, last_ms]``: every 8 h from ``offset_h`` (BitMEX funds
    at 04:00, 12:00, 20:00), hourly inside ``hourly`` (ms range); ``late_ms`` stamps some
    events a few ms late (Binance); ``marks_from_ms``: no mark price before it."""

    first_ms: int
    last_ms: int
    seed: int = 5
    offset_h: int = 0
    hourly: tuple[int, int] = (0, 0)
    late_ms: bool = False
    marks_from_ms: int = 0
    events: list[tuple[int, float, float | None, int]] = field(init=False)

    def __post_init__(self) -> None:
        start = self.first_ms - (self.first_ms - self.offset_h * _HOUR_MS) % (8 * _HOUR_MS)
        events, t, gap = [], start, 8
        while t <= self.last_ms:
            rng = random.Random(f"{self.seed}:{t}")
            rate = round(rng.uniform(-0.0005, 0.001), 8)
            mark = round(40_000 + 2_000 * math.sin(t / 3e9), 2) if t >= self.marks_from_ms else None
            late = rng.randrange(0, 9) if self.late_ms else 0
            if t >= self.first_ms:
                events.append((t + late, rate, mark, gap))
            gap = 1 if self.hourly[0] <= t < self.hourly[1] else 8
            t += gap * _HOUR_MS
        self.events = events

    @classmethod
    def recent(cls, days: int, **kwargs: Any) -> FundingHistory:
        """The last ``days`` days up to now, with ten days of hourly funding in the middle
        (240 hours in a row: OKX's and Bybit's pages of 100 and 200 are filled whole)."""
        last = now_ns() // NS_PER_MS
        first = last - days * NS_PER_DAY // NS_PER_MS
        mid = (first + last) // 2
        return cls(first, last, hourly=(mid, mid + 10 * 24 * _HOUR_MS), **kwargs)

    def between(self, lo_ms: int, hi_ms: int) -> list[tuple[int, float, float | None, int]]:
        """The events with ``lo_ms <= time <= hi_ms``, oldest first."""
        return [e for e in self.events if lo_ms <= e[0] <= hi_ms]

    def truth(self, start_ts: int, end_ts: int, *, marks: bool, intervals: bool) -> pl.DataFrame:
        """The funding rows a backfill of ``[start_ts, end_ts)`` must store."""
        rows = [e for e in self.events if start_ts <= e[0] * NS_PER_MS < end_ts]
        return pl.DataFrame(
            {
                "ts": [e[0] * NS_PER_MS for e in rows],
                "rate": [e[1] for e in rows],
                "mark_price": [e[2] if marks else None for e in rows],
                "interval_h": [e[3] if intervals else None for e in rows],
            },
            schema={
                "ts": pl.Int64,
                "rate": pl.Float64,
                "mark_price": pl.Float64,
                "interval_h": pl.Int32,
            },
        )


def binance_unknown() -> web.Response:
    """Binance's answer to an unknown symbol (a new one a request: a reply is sent once)."""
    return json_reply({"code": -1121, "msg": "Invalid symbol."}, 400)


def okx_unknown() -> web.Response:
    """OKX's answer to an unknown instrument."""
    return json_reply({"code": "51001", "msg": "Instrument ID does not exist", "data": []})


def okx_window(before: int | None, after: int | None) -> tuple[int, int]:
    """OKX's exclusive ``before``/``after`` as inclusive ms bounds (open when absent)."""
    lo = before + 1 if before is not None else None
    return within(lo, after - 1 if after is not None else None)


#: The instrument every Bybit fake of a derivatives series serves.
BYBIT_LINEAR = {"category": "linear", "symbol": "BTCUSDT"}


@dataclass
class FundingFake(server.SeriesFake):
    """A funding-history endpoint serving ``history``; ``marks`` / ``intervals``: whether
    its rows carry the mark price / the funding interval (what the store keeps)."""

    history: FundingHistory
    marks: bool = False
    intervals: bool = False


@dataclass
class BinanceFunding(FundingFake):
    """``GET /fapi/v1/fundingRate`` for BTCUSDT."""

    marks: bool = True

    @get("/fapi/v1/fundingRate")
    async def funding(self, request: web.Request) -> web.Response:
        limit_msg = "Data sent for parameter 'limit' is not valid."
        bad = json_reply({"code": -1130, "msg": limit_msg}, 400)
        ints = {"limit": 100, "startTime": None, "endTime": None}
        limit, start, end = self.window_query(
            request, {"symbol": "BTCUSDT"}, binance_unknown(), ints, bad
        )
        if not 1 <= (limit or 0) <= 1000:
            raise Refusal(bad)
        if start is None and end is None:
            rows = self.history.events[-200:]  # "the latest 200"
        else:
            rows = self.history.between(*within(start, end))
        return json_reply([
            {"symbol": "BTCUSDT", "fundingTime": t, "fundingRate": f"{rate:.8f}",
             "markPrice": "" if mark is None else f"{mark:.8f}"}
            for t, rate, mark, _ in rows[: limit or 0]
        ])  # fmt: skip


class BybitFunding(FundingFake):
    """``GET /v5/market/funding/history`` for linear BTCUSDT."""

    @staticmethod
    def _error(code: int, msg: str) -> web.Response:
        return json_reply({"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}})

    @get("/v5/market/funding/history")
    async def funding(self, request: web.Request) -> web.Response:
        bad = self._error(10001, "params error")
        unknown = self._error(10001, "Not supported symbols")
        ints = {"limit": 200, "startTime": None, "endTime": None}
        limit, start, end = self.window_query(request, BYBIT_LINEAR, unknown, ints, bad)
        if not 1 <= (limit or 0) <= 200 or (start is not None and end is None):
            raise Refusal(bad)  # startTime alone is an error on Bybit
        page = newest_first(self.history.between(*within(start, end)), limit or 0)
        listed = [{"symbol": "BTCUSDT", "fundingRate": f"{rate:.8f}",
                   "fundingRateTimestamp": str(t)} for t, rate, _, _ in page]  # fmt: skip
        return json_reply({"retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": t_now(),
                           "result": {"category": "linear", "list": listed}})  # fmt: skip


class OkxFunding(FundingFake):
    """``GET /api/v5/public/funding-rate-history`` for BTC-USDT-SWAP."""

    @get("/api/v5/public/funding-rate-history")
    async def funding(self, request: web.Request) -> web.Response:
        bad = json_reply({"code": "51000", "msg": "Parameter limit error", "data": []})
        ints = {"limit": 400, "before": None, "after": None}
        limit, before, after = self.window_query(
            request, {"instId": "BTC-USDT-SWAP"}, okx_unknown(), ints, bad
        )
        if not 1 <= (limit or 0) <= 400:
            raise Refusal(bad)
        lo, hi = okx_window(before, after)
        oldest = t_now() - 92 * 24 * _HOUR_MS  # "the last 3 months"
        page = newest_first(self.history.between(max(oldest, lo), hi), limit or 0)
        data = [{"formulaType": "noRate", "fundingRate": f"{rate + 1e-7:.10f}",
                 "fundingTime": str(t), "instId": "BTC-USDT-SWAP", "instType": "SWAP",
                 "method": "next_period", "realizedRate": f"{rate:.10f}"}
                for t, rate, _, _ in page]  # fmt: skip
        return json_reply({"code": "0", "msg": "", "data": data})


@dataclass
class BitmexFunding(FundingFake):
    """``GET /api/v1/funding`` for XBTUSDT."""

    intervals: bool = True

    @get("/api/v1/funding")
    async def funding(self, request: web.Request) -> web.Response:
        q = request.query
        unknown = json_reply({"error": {"message": "Invalid symbol", "name": "HTTPError"}}, 400)
        bad = json_reply({"error": {"message": "count must be <= 1000",
                                    "name": "ValidationError"}}, 400)  # fmt: skip
        (count,) = self.window_query(request, {"symbol": "XBTUSDT"}, unknown, {"count": 100}, bad)
        if not 1 <= (count or 0) <= 1000:
            raise Refusal(bad)
        lo = _iso_ms(q["startTime"]) if "startTime" in q else 0
        hi = _iso_ms(q["endTime"]) if "endTime" in q else 2**62
        rows = self.history.between(lo, hi)
        if q.get("reverse", "false") == "true":
            rows = list(reversed(rows))
        return json_reply([
            {"timestamp": _iso(t), "symbol": "XBTUSDT",
             "fundingInterval": f"2000-01-01T{gap:02d}:00:00.000Z",
             "fundingRate": rate, "fundingRateDaily": round(rate * 24 / gap, 10)}
            for t, rate, _, gap in rows[:count]
        ])  # fmt: skip


def t_now() -> int:
    return now_ns() // NS_PER_MS


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_ms(text: str) -> int:
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


#: exchange -> (funding fake class, FundingHistory options as the exchange stamps them)
FUNDING_FAKES: dict[str, tuple[type, dict[str, Any]]] = {
    "binance": (BinanceFunding, {"late_ms": True}),
    "bybit": (BybitFunding, {}),
    "okx": (OkxFunding, {}),
    "bitmex": (BitmexFunding, {"offset_h": 4}),
}


def market_app(exchange: str, first_ms: int) -> web.Application:
    """The exchange's existing fake: its market listing (the symbol check) and pages."""
    if exchange == "binance":
        return binance.FakeBinance.default(listing_ms=first_ms).app()
    if exchange == "bybit":
        return bybit.make_app(bybit.FakeBybit())
    if exchange == "okx":
        return okx.make_app(okx.FakeOkx())
    return bitmex.BitmexFake(first_ms=first_ms, last_ms=t_now()).app()


def funding_app(exchange: str, fake: Any) -> web.Application:
    """The exchange's fake (markets, listings) with ``fake``'s funding route added."""
    return routes_app(fake, app=market_app(exchange, fake.history.first_ms))
