"""A fake BitMEX public REST API on loopback, with deterministic data.

Speaks the real protocol (https://www.bitmex.com/api/explorer/), quirks included:

* ``/api/v1/trade/bucketed`` stamps each bucket with its CLOSE time, and its ``open``
  is the previous bucket's close, so it can lie outside ``[low, high]``; binSize only
  1m/5m/1h/1d; ``partial``; ``count`` <= 1000;
* ``/api/v1/trade`` rows are objects with ISO-8601 ms ``timestamp``, ``trdMatchID``,
  the taker ``side`` ("Buy"/"Sell"), ``size`` in contracts (XBTUSD: 1 USD each) and
  ``homeNotional`` in XBT; ``startTime``/``endTime`` inclusive, ``start`` = row offset,
  ``count`` <= 1000; many trades share a millisecond and ``bursts`` add thousands;
* errors are ``{"error": {"message": ..., "name": "HTTPError"}}`` with HTTP 400;
* every reply carries ``x-ratelimit-limit/remaining/reset`` (120 per minute);
* ``/api/v1/orderBook/L2``: sells (highest first) then buys (highest first);
* ``/api/v1/instrument/active``: a few perpetuals, a spot pair and a dated future.

``truth_candles`` / ``truth_trades`` return what a complete backfill must store.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import NS_PER_MS, Span, Symbol, iso_datetime, to_ns
from dccd_core.sources.bitmex.symbols import to_native
from tests.fakes.market import SecondsMarket, burst_stamps, ohlc_frame, second_stamps, trades_frame
from tests.fakes.server import ErrorReply, Refusal, get, json_reply, routes_app

__all__ = ["INSTRUMENTS", "BitmexFake"]

MAX_COUNT = 1000
_BINS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
INSTRUMENTS: list[dict[str, Any]] = [
    {
        "symbol": "XBTUSD",
        "typ": "FFWCSX",
        "isInverse": True,
        "isQuanto": False,
        "underlyingToPositionMultiplier": None,
        "settlCurrency": "XBt",
        "state": "Open",
    },
    {
        "symbol": "ETHUSD",
        "typ": "FFWCSX",
        "isInverse": False,
        "isQuanto": True,
        "underlyingToPositionMultiplier": None,
        "settlCurrency": "XBt",
        "state": "Open",
    },
    {
        "symbol": "XBTUSDT",
        "typ": "FFWCSX",
        "isInverse": False,
        "isQuanto": False,
        "underlyingToPositionMultiplier": 1_000_000,
        "settlCurrency": "USDt",
        "state": "Open",
    },
    {
        "symbol": "XBT_USDT",
        "typ": "IFXXXP",
        "isInverse": False,
        "isQuanto": False,
        "underlyingToPositionMultiplier": 100_000_000,
        "settlCurrency": "USDt",
        "state": "Open",
    },
    {
        "symbol": "XBTZ24",
        "typ": "FFCCSX",
        "isInverse": True,
        "isQuanto": False,
        "underlyingToPositionMultiplier": None,
        "settlCurrency": "XBt",
        "state": "Open",
    },
]
_NAMES = {i["symbol"] for i in INSTRUMENTS}


#: BitMEX's load shedding: HTTP 503 "overloaded", the request never reached the engine.
ERROR_REPLIES = (
    ErrorReply(
        503,
        {
            "error": {
                "message": "The system is currently overloaded. Please try again later.",
                "name": "HTTPError",
            }
        },
    ),
)


def _iso(ms: int) -> str:
    text = iso_datetime(ms * NS_PER_MS).rstrip("Z")
    head, _, frac = text.partition(".")
    return f"{head}.{frac.ljust(3, '0')[:3]}Z"


def _native(symbol: Symbol | str) -> str:
    return symbol if isinstance(symbol, str) else to_native(symbol)


@dataclass
class BitmexFake(SecondsMarket):
    """Deterministic market data between ``first_ms`` and ``last_ms`` (inclusive)."""

    seed: int = 11
    quiet_every: int = 11  # 0: never quiet
    #: rows without homeNotional (older BitMEX data); the source converts ``size``
    drop_home_notional: bool = False
    #: at least this many trades (before ``density``) in every second that is not quiet
    min_per_second: int = 0
    _window_start: float = 0.0
    _used: int = 0

    # -- data ------------------------------------------------------------------

    def _second(self, native: str, sec: int) -> list[tuple[int, dict[str, Any]]]:
        rng = random.Random(f"{self.seed}:{native}:{sec}")
        stamps: list[int] = []
        if not self.quiet_every or (sec // 60) % self.quiet_every != 3:  # quiet minutes
            stamps = second_stamps(
                rng, sec, counts=(0, 1, 2, 3, 4, 6, 9), cluster_max=15,
                density=self.density, min_count=self.min_per_second,
            )  # fmt: skip
        stamps += burst_stamps(self.bursts, sec)
        stamps.sort()
        base = 42_000 + 800 * math.sin(sec / 7_000)
        rows = []
        for rank, ms in enumerate(stamps):
            price = round(base + rng.uniform(-10, 10) * 2) / 2
            size = 100 * rng.randint(1, 300)
            home = round(size / price, 8)
            row = {
                "timestamp": _iso(ms),
                "symbol": native,
                "side": "Buy" if rng.random() < 0.5 else "Sell",
                "size": size,
                "price": price,
                "tickDirection": "ZeroPlusTick",
                "trdMatchID": f"00000000-006d-1000-0000-{sec * 10_000 + rank:012x}",
                "grossValue": round(home * 1e8),
                "homeNotional": home,
                "foreignNotional": size,
                "trdType": "Regular",
                "pool": "Primary",
            }
            if self.drop_home_notional:
                del row["homeNotional"]
            rows.append((ms, row))
        return rows

    def _trades(self, native: str, start_ms: int, end_ms: int) -> Iterator[dict[str, Any]]:
        lo, hi = max(start_ms, self.first_ms), min(end_ms, self.last_ms)
        for sec in range(lo // 1000, hi // 1000 + 1) if lo <= hi else ():
            for ms, row in self._second(native, sec):
                if lo <= ms <= hi:
                    yield row

    def _close(self, native: str, seconds: int, open_s: int) -> float:
        rng = random.Random(f"{self.seed}:{native}:{seconds}:{open_s}:close")
        return round((42_000 + 800 * math.sin(open_s / 7_000) + rng.uniform(-40, 40)) * 2) / 2

    def _bucket(self, native: str, seconds: int, close_s: int) -> dict[str, Any]:
        """The bucket ENDING at ``close_s``: its open is the previous bucket's close."""
        open_s = close_s - seconds
        rng = random.Random(f"{self.seed}:{native}:{seconds}:{open_s}")
        close = self._close(native, seconds, open_s)
        mid = 42_000 + 800 * math.sin(open_s / 7_000)
        high = max(close, mid) + round(rng.uniform(0, 15) * 2) / 2
        low = min(close, mid) - round(rng.uniform(0, 15) * 2) / 2
        volume = 100 * rng.randint(10, 50_000)
        home = round(volume / close, 8)
        return {
            "timestamp": _iso(close_s * 1000),
            "symbol": native,
            "open": self._close(native, seconds, open_s - seconds),
            "high": high,
            "low": low,
            "close": close,
            "trades": rng.randint(1, 3000),
            "volume": volume,
            "vwap": round((high + low) / 2, 4),
            "lastSize": 100,
            "turnover": round(home * 1e8),
            "homeNotional": home,
            "foreignNotional": volume,
            "pool": "Primary",
        }

    def _buckets(
        self, native: str, seconds: int, start_ms: int, end_ms: int
    ) -> Iterator[dict[str, Any]]:
        step = seconds * 1000
        lo = max(start_ms, self.first_ms + step)  # the first bucket closes one span in
        first = -(-lo // step) * step
        for close_ms in range(first, min(end_ms, self.last_ms) + 1, step):
            yield self._bucket(native, seconds, close_ms // 1000)

    # -- truth -----------------------------------------------------------------

    def truth_trades(self, symbol: Symbol | str, start_ts: int, end_ts: int) -> pl.DataFrame:
        """Every trade with ``start_ts <= ts < end_ts``, in the trades schema."""
        rows = list(self._trades(_native(symbol), start_ts // NS_PER_MS, -(-end_ts // NS_PER_MS)))
        frame = trades_frame(
            ts=[to_ns(r["timestamp"]) for r in rows],
            trade_id=[r["trdMatchID"] for r in rows],
            price=[float(r["price"]) for r in rows],
            amount=[r.get("homeNotional", r["size"] / r["price"]) for r in rows],
            side=[r["side"].lower() for r in rows],
        )
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    def truth_candles(
        self, symbol: Symbol | str, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """Every bar OPENING in ``[start_ts, end_ts)`` (open time = stamp - span)."""
        native, step = _native(symbol), span.seconds * 1000
        rows = list(
            self._buckets(
                native,
                span.seconds,
                start_ts // NS_PER_MS + step,
                -(-end_ts // NS_PER_MS) + step - 1,
            )
        )
        frame = ohlc_frame(
            ts=[to_ns(r["timestamp"]) - span.ns for r in rows],
            open=[float(r["open"]) for r in rows],
            high=[float(r["high"]) for r in rows],
            low=[float(r["low"]) for r in rows],
            close=[float(r["close"]) for r in rows],
            volume=[float(r["homeNotional"]) for r in rows],
            quote_volume=[float(r["foreignNotional"]) for r in rows],
            trades=[r["trades"] for r in rows],
        )
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    def book(self, native: str, depth: int) -> list[dict[str, Any]]:
        """Sells highest first, then buys highest first, as BitMEX sends L2."""
        rng = random.Random(f"{self.seed}:{native}:book")
        sells = [
            {
                "symbol": native,
                "id": 8_700_000_000 + i,
                "side": "Sell",
                "size": 100 * rng.randint(1, 500),
                "price": 42_000.5 + 0.5 * i,
                "timestamp": "2024-01-01T00:00:00.000Z",
            }
            for i in range(depth)
        ]
        buys = [
            {
                "symbol": native,
                "id": 8_800_000_000 + i,
                "side": "Buy",
                "size": 100 * rng.randint(1, 500),
                "price": 42_000.0 - 0.5 * i,
                "timestamp": "2024-01-01T00:00:00.000Z",
            }
            for i in range(depth)
        ]
        return sells[::-1] + buys

    # -- HTTP --------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp app serving this fake."""
        return routes_app(self)

    def _json(self, data: Any, status: int = 200) -> web.Response:
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._used = now, 0
        self._used += 1
        headers = {
            "x-ratelimit-limit": "120",
            "x-ratelimit-remaining": str(max(0, 120 - self._used)),
            "x-ratelimit-reset": str(int(time.time()) + 60),
        }
        return json_reply(data, status, headers)

    def _error(self, message: str, status: int = 400, name: str = "HTTPError") -> web.Response:
        return self._json({"error": {"message": message, "name": name}}, status=status)

    def _query(self, request: web.Request) -> tuple[str, int, int, int, int, bool]:
        self.requests.append(str(request.rel_url))
        q = request.query
        native = q.get("symbol", "")
        if native not in _NAMES:
            message = f"Unknown symbol {native!r}" if native else "symbol is required"
            raise Refusal(self._error(message))
        try:
            count = int(q.get("count", 100))
            offset = int(q.get("start", 0))
            start = to_ns(q["startTime"]) // NS_PER_MS if "startTime" in q else self.first_ms
            end = to_ns(q["endTime"]) // NS_PER_MS if "endTime" in q else self.last_ms
        except (ValueError, Exception):
            message = "Invalid startTime, endTime, count or start"
            raise Refusal(self._error(message, name="ValidationError")) from None
        if not 0 < count <= MAX_COUNT:
            raise Refusal(self._error("count must be between 1 and 1000", name="ValidationError"))
        return native, count, offset, start, end, q.get("reverse", "false") == "true"

    @get("/api/v1/trade")
    async def _trades_handler(self, request: web.Request) -> web.Response:
        native, count, offset, start, end, reverse = self._query(request)
        if reverse:
            rows = list(self._trades(native, start, end))[::-1][offset : offset + count]
            return self._json(rows)
        out: list[dict[str, Any]] = []
        for i, row in enumerate(self._trades(native, start, end)):
            if i >= offset:
                out.append(row)
                if len(out) >= count:
                    break
        return self._json(out)

    @get("/api/v1/trade/bucketed")
    async def _bucketed_handler(self, request: web.Request) -> web.Response:
        bin_size = request.query.get("binSize", "")
        if bin_size not in _BINS:
            self.requests.append(str(request.rel_url))
            return self._error("binSize must be one of 1m, 5m, 1h, 1d", name="ValidationError")
        native, count, offset, start, end, reverse = self._query(request)
        rows = list(self._buckets(native, _BINS[bin_size], start, end))
        rows = rows[::-1] if reverse else rows
        return self._json(rows[offset : offset + count])

    @get("/api/v1/orderBook/L2")
    async def _book_handler(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        native = request.query.get("symbol", "")
        if native not in _NAMES:
            return self._error(f"Unknown symbol {native!r}")
        depth = int(request.query.get("depth", 25)) or 200
        return self._json(self.book(native, depth))

    @get("/api/v1/instrument/active")
    async def _instruments_handler(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        return self._json(INSTRUMENTS)
