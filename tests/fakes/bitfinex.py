"""A fake Bitfinex v2 public REST API on loopback, with deterministic data.

Speaks the real protocol (https://docs.bitfinex.com/docs/rest-public), quirks
included:

* candles ``/v2/candles/trade:{tf}:{symbol}/hist`` rows ``[MTS, OPEN, CLOSE, HIGH, LOW,
  VOLUME]`` (close before high), trades ``/v2/trades/{symbol}/hist`` rows ``[ID, MTS,
  AMOUNT, PRICE]`` with a signed amount (positive = taker buy);
* ``sort`` defaults to -1 (newest first); ``start``/``end`` are inclusive ms; ``limit``
  defaults to 100 (candles) / 125 (trades) and above 10,000 is refused with HTTP 500 and
  ``["error", 10020, "limit: invalid"]``; unknown symbols get ``symbol: invalid``;
* no candle for a minute without trades (holes), whole numbers sent as JSON integers;
* many trades share a millisecond, and ``bursts`` put thousands in one millisecond
  (across a page boundary, or more than a page);
* ``maintenance``: HTTP 500 ``["error", 20060, "maintenance"]`` for the next N data
  requests (transient: a client must retry);
* book ``/v2/book/{symbol}/P0?len=1|25|100``: bids (amount > 0) best first, then asks
  (amount < 0) best first; conf lists ``pub:list:pair:exchange`` / ``:futures``.

``truth_candles`` / ``truth_trades`` return what a complete backfill must store.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import NS_PER_MS, Span, Symbol
from dccd_core.sources.bitfinex.symbols import to_native
from tests.fakes.market import SecondsMarket, burst_stamps, ohlc_frame, second_stamps, trades_frame
from tests.fakes.server import ErrorReply, Refusal, get, json_reply, routes_app

__all__ = ["MAX_LIMIT", "BitfinexFake"]

MAX_LIMIT = 10_000
_TIMEFRAMES = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "3h": 10800,
    "6h": 21600,
    "12h": 43200,
    "1D": 86400,
    "1W": 604800,
}
_PAIRS_EXCHANGE = ["BTCUSD", "ETHUSD", "BTCUST", "AVAX:USD", "DSHUSD"]
_PAIRS_FUTURES = ["BTCF0:USTF0", "ETHF0:USTF0"]
_ID_STRIDE = 100_000  # trade id = second * stride + rank: unique and time-ordered


#: Bitfinex's own transient errors, with the HTTP 500 it sends every error with.
ERROR_REPLIES = (
    ErrorReply(500, ["error", 20060, "maintenance"]),
    ErrorReply(500, ["error", 11000, "ready: invalid"]),
)


def _num(value: float) -> float | int:
    """Bitfinex sends whole numbers as JSON integers (``3890`` not ``3890.0``)."""
    return int(value) if float(value).is_integer() else value


def _native(symbol: Symbol | str) -> str:
    return symbol if isinstance(symbol, str) else to_native(symbol)


@dataclass
class BitfinexFake(SecondsMarket):
    """Deterministic market data between ``first_ms`` and ``last_ms`` (inclusive)."""

    #: the next N candle/trade requests are answered HTTP 500 ``["error", 20060,
    #: "maintenance"]``, as Bitfinex does while in maintenance
    maintenance: int = 0

    # -- data ------------------------------------------------------------------

    def _second(self, native: str, sec: int) -> list[list[Any]]:
        """The trades of one second, sorted by (MTS, ID)."""
        rng = random.Random(f"{self.seed}:{native}:{sec}")
        rows: list[list[Any]] = []
        if (sec // 60) % self.quiet_every != 5:
            counts = (0, 1, 2, 3, 4, 5, 6, 8, 10)
            stamps = second_stamps(rng, sec, counts=counts, cluster_max=12, density=self.density)
            base = 30_000 + 500 * math.sin(sec / 5_000)
            rows += ([0, ms, rng, base] for ms in stamps)
        rows += ([0, ms, rng, 30_000.0] for ms in burst_stamps(self.bursts, sec))
        rows.sort(key=lambda r: r[1])
        out = []
        for rank, (_, mts, rr, base) in enumerate(rows):
            amount = round(rr.uniform(0.0001, 2.0), 8)
            if rr.random() < 0.5:
                amount = -amount
            price = round(base + rr.uniform(-5, 5), 1)
            out.append([sec * _ID_STRIDE + rank, mts, amount, _num(price)])
        return out

    def _trades(
        self, native: str, start_ms: int, end_ms: int, newest_first: bool
    ) -> Iterator[list[Any]]:
        lo, hi = max(start_ms, self.first_ms), min(end_ms, self.last_ms)
        if lo > hi:
            return
        secs = range(lo // 1000, hi // 1000 + 1)
        for sec in reversed(secs) if newest_first else secs:
            rows = [r for r in self._second(native, sec) if lo <= r[1] <= hi]
            yield from reversed(rows) if newest_first else rows

    def _candle(self, native: str, seconds: int, open_s: int) -> list[Any] | None:
        rng = random.Random(f"{self.seed}:{native}:{seconds}:{open_s}")
        if rng.random() < 0.05:
            return None  # no trade in this bar: Bitfinex sends no candle
        mid = 30_000 + 500 * math.sin(open_s / 5_000)
        o, c = round(mid + rng.uniform(-20, 20), 1), round(mid + rng.uniform(-20, 20), 1)
        h = round(max(o, c) + rng.uniform(0, 10), 1)
        low = round(min(o, c) - rng.uniform(0, 10), 1)
        vol = round(rng.uniform(0.01, 50), 8)
        return [open_s * 1000, _num(o), _num(c), _num(h), _num(low), vol]

    def _candles(
        self, native: str, seconds: int, start_ms: int, end_ms: int
    ) -> Iterator[list[Any]]:
        step = seconds * 1000
        lo = max(start_ms, self.first_ms)
        first = -(-lo // step) * step
        for open_ms in range(first, min(end_ms, self.last_ms) + 1, step):
            row = self._candle(native, seconds, open_ms // 1000)
            if row is not None:
                yield row

    # -- truth -----------------------------------------------------------------

    def truth_trades(self, symbol: Symbol | str, start_ts: int, end_ts: int) -> pl.DataFrame:
        """Every trade with ``start_ts <= ts < end_ts``, in the trades schema."""
        rows = list(
            self._trades(_native(symbol), start_ts // NS_PER_MS, -(-end_ts // NS_PER_MS) - 1, False)
        )
        return trades_frame(
            ts=[r[1] * NS_PER_MS for r in rows],
            trade_id=[str(r[0]) for r in rows],
            price=[float(r[3]) for r in rows],
            amount=[abs(float(r[2])) for r in rows],
            side=["buy" if r[2] > 0 else "sell" for r in rows],
        ).filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    def truth_candles(
        self, symbol: Symbol | str, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        """Every bar opening in ``[start_ts, end_ts)``, in the ohlc schema."""
        rows = list(
            self._candles(
                _native(symbol), span.seconds, start_ts // NS_PER_MS, -(-end_ts // NS_PER_MS) - 1
            )
        )
        return ohlc_frame(
            ts=[r[0] * NS_PER_MS for r in rows],
            open=[float(r[1]) for r in rows],
            high=[float(r[3]) for r in rows],
            low=[float(r[4]) for r in rows],
            close=[float(r[2]) for r in rows],
            volume=[float(r[5]) for r in rows],
        )

    def book(self, native: str, depth: int) -> list[list[Any]]:
        """Deterministic book: ``depth`` bids then ``depth`` asks, as Bitfinex sends them."""
        rng = random.Random(f"{self.seed}:{native}:book")
        bids = [
            [_num(30_000 - 0.5 * i), rng.randint(1, 5), round(rng.uniform(0.01, 3), 8)]
            for i in range(depth)
        ]
        asks = [
            [_num(30_000.5 + 0.5 * i), rng.randint(1, 5), -round(rng.uniform(0.01, 3), 8)]
            for i in range(depth)
        ]
        return bids + asks

    # -- HTTP --------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp app serving this fake."""
        return routes_app(self)


    def _error(self, code: int, message: str) -> web.Response:
        return json_reply(["error", code, message], status=500)

    def _known(self, native: str) -> bool:
        return native[1:] in _PAIRS_EXCHANGE + _PAIRS_FUTURES

    def _window(
        self, request: web.Request, default_limit: int
    ) -> tuple[int, int, int, bool]:
        q = request.query
        try:
            limit = int(q.get("limit", default_limit))
            start = int(q.get("start", 0))
            end = int(q.get("end", self.last_ms))
            sort = int(q.get("sort", -1))
        except ValueError:
            raise Refusal(self._error(10020, "params: invalid")) from None
        if not 0 < limit <= MAX_LIMIT:
            raise Refusal(self._error(10020, "limit: invalid"))
        return limit, start, end, sort != 1

    def _in_maintenance(self) -> bool:
        if self.maintenance > 0:
            self.maintenance -= 1
            return True
        return False

    @get("/v2/trades/{symbol}/hist")
    async def _trades_handler(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        if self._in_maintenance():
            return self._error(20060, "maintenance")
        native = request.match_info["symbol"]
        if not self._known(native):
            return self._error(10020, "symbol: invalid")
        limit, start, end, newest_first = self._window(request, 125)
        rows = []
        for row in self._trades(native, start, end, newest_first):
            rows.append(row)
            if len(rows) >= limit:
                break
        return json_reply(rows)

    @get("/v2/candles/{key}/hist")
    async def _candles_handler(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        if self._in_maintenance():
            return self._error(20060, "maintenance")
        parts = request.match_info["key"].split(":", 2)
        if len(parts) != 3 or parts[0] != "trade" or parts[1] not in _TIMEFRAMES:
            return self._error(10020, "key: invalid")
        native = parts[2]
        if not self._known(native):
            return self._error(10020, "symbol: invalid")
        limit, start, end, newest_first = self._window(request, 100)
        seconds = _TIMEFRAMES[parts[1]]
        rows = list(self._candles(native, seconds, start, end))
        rows = rows[::-1][:limit] if newest_first else rows[:limit]
        return json_reply(rows)

    @get("/v2/book/{symbol}/{prec}")
    async def _book_handler(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        native = request.match_info["symbol"]
        if not self._known(native):
            return self._error(10020, "symbol: invalid")
        if request.match_info["prec"] not in ("P0", "P1", "P2", "P3", "P4", "R0"):
            return self._error(10020, "prec: invalid")
        try:
            depth = int(request.query.get("len", 25))
        except ValueError:
            return self._error(10020, "len: invalid")
        if depth not in (1, 25, 100):
            return self._error(10020, "len: invalid")
        return json_reply(self.book(native, depth))

    @get("/v2/conf/{key}")
    async def _conf_handler(self, request: web.Request) -> web.Response:
        self.requests.append(str(request.rel_url))
        key = request.match_info["key"]
        if key == "pub:list:pair:exchange":
            return json_reply([_PAIRS_EXCHANGE])
        if key == "pub:list:pair:futures":
            return json_reply([_PAIRS_FUTURES])
        return json_reply([None])
