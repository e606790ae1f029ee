"""A fake Bybit v5 REST API on loopback, with the real one's quirks.

Quirks reproduced (https://bybit-exchange.github.io/docs/v5/market/kline and siblings):

* every body is ``{"retCode", "retMsg", "result", "retExtInfo", "time"}`` with HTTP 200,
  errors included (``retCode`` 10001 "Not supported symbols" for an unknown symbol,
  10001 "params error" for a bad limit/interval);
* numbers are strings; kline and trade lists are newest first; kline ``start`` and
  ``end`` are inclusive ms and the newest ``limit`` bars of the range are returned;
* ``recent-trade`` serves only the latest trades (spot <= 60, derivatives <= 1000);
* spot books list ``a`` before ``b`` and have no ``seq``; the same native name
  ``BTCUSDT`` is a spot pair or a linear perpetual depending on ``category``;
  inverse ``BTCUSD`` counts sizes in USD contracts, and its kline ``volume`` is USD,
  ``turnover`` BTC.

``FakeBybit.truth_candles`` / ``truth_trades`` give the exact rows a correct source
must store. ``fail_next`` queues error bodies for the next requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import NS_PER_MS, Span, Symbol
from tests.fakes.market import SeededCandles, SeededTape, Trade, bars_frame, trades_frame
from tests.fakes.server import ErrorReply, Refusal, get, json_reply, routes_app

__all__ = ["NOW_MS", "TAPE_START_MS", "FakeBybit", "make_app"]

NOW_MS = 1_709_251_200_000 + 37 * 60_000 + 12_345  # 2024-03-01T00:37:12.345Z
TAPE_START_MS = NOW_MS - 3 * 3_600_000
_WEEK_OFFSET_MS = 4 * 86_400_000  # weeks open on Monday; the epoch was a Thursday
_INTERVAL_MS = {
    "1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "30": 1_800_000,
    "60": 3_600_000, "120": 7_200_000, "240": 14_400_000, "360": 21_600_000,
    "720": 43_200_000, "D": 86_400_000, "W": 604_800_000,
}  # fmt: skip

#: (category, native) -> (unified symbol, inverse)
_MARKETS: dict[tuple[str, str], tuple[Symbol, bool]] = {
    ("spot", "BTCUSDT"): (Symbol("BTC", "USDT"), False),
    ("spot", "ETHUSDT"): (Symbol("ETH", "USDT"), False),
    ("linear", "BTCUSDT"): (Symbol("BTC", "USDT", "USDT"), False),
    ("linear", "BTCPERP"): (Symbol("BTC", "USDC", "USDC"), False),
    ("inverse", "BTCUSD"): (Symbol("BTC", "USD", "BTC"), True),
}


#: Bybit's own server-side errors (v5 retCode list): 10016 "Server error" (also with a
#: 5xx from its gateway) and 10000 "Server Timeout" in an HTTP 200 envelope.
ERROR_REPLIES = (
    ErrorReply(
        503,
        {
            "retCode": 10016,
            "retMsg": "Server error.",
            "result": {},
            "retExtInfo": {},
            "time": NOW_MS,
        },
    ),
    ErrorReply(
        200,
        {
            "retCode": 10016,
            "retMsg": "Internal server error.",
            "result": {},
            "retExtInfo": {},
            "time": NOW_MS,
        },
    ),
    ErrorReply(
        200,
        {
            "retCode": 10000,
            "retMsg": "Server Timeout",
            "result": {},
            "retExtInfo": {},
            "time": NOW_MS,
        },
    ),
)


def _body(result: Any, code: int = 0, msg: str = "OK") -> web.Response:
    return json_reply(
        {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": NOW_MS}
    )


@dataclass
class FakeBybit:
    """State and truth of the fake; ``make_app(fake)`` serves it."""

    now_ms: int = NOW_MS
    fail_next: list[tuple[int, str]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def candles(self, symbol: Symbol) -> SeededCandles:
        return SeededCandles(f"bybit:{symbol}", 40_000.0 if symbol.base == "BTC" else 2_500.0)

    def tape(self, symbol: Symbol) -> SeededTape:
        inverse = symbol.settle == symbol.base and symbol.settle is not None
        return _tape(str(symbol), inverse)

    # -- truth ------------------------------------------------------------------------

    def truth_candles(self, symbol: Symbol, span: Span, start_ts: int, end_ts: int) -> pl.DataFrame:
        """The ohlc rows a source must return for bars opening in ``[start_ts, end_ts)``."""
        offset = _WEEK_OFFSET_MS if span.label == "1w" else 0
        end_ms = min(-(-end_ts // NS_PER_MS), self.now_ms + 1)
        bars = self.candles(symbol).bars(start_ts // NS_PER_MS, end_ms, span.ms, offset)
        bars = [b for b in bars if b.ts_ms * NS_PER_MS >= start_ts]
        return bars_frame(bars)

    def truth_trades(self, symbol: Symbol, start_ts: int, end_ts: int) -> pl.DataFrame:
        """The trades of ``[start_ts, end_ts)`` in the trades schema (amounts in base)."""
        inverse = symbol.settle == symbol.base and symbol.settle is not None
        trades = [t for t in self.tape(symbol).trades if start_ts <= t.ts_ms * NS_PER_MS < end_ts]
        return _trade_frame(trades, inverse, spot=symbol.settle is None)

    # -- handlers ---------------------------------------------------------------------

    def _market(self, request: web.Request) -> tuple[Symbol, bool]:
        self.requests.append((request.path, dict(request.query)))
        if self.fail_next:
            code, msg = self.fail_next.pop(0)
            raise Refusal(_body({}, code, msg))
        key = (request.query.get("category", "linear"), request.query.get("symbol", ""))
        if key not in _MARKETS:
            raise Refusal(_body({}, 10001, "Not supported symbols"))
        return _MARKETS[key]

    def _limited(
        self, request: web.Request, default: tuple[int, int], most: tuple[int, int]
    ) -> tuple[Symbol, bool, int]:
        """The market, whether spot, and ``limit`` (``default``/``most`` for spot and for
        derivatives: Bybit's limits differ by category)."""
        symbol, _ = self._market(request)
        spot = symbol.settle is None
        limit = int(request.query.get("limit", str(default[0] if spot else default[1])))
        if not 1 <= limit <= (most[0] if spot else most[1]):
            raise Refusal(_body({}, 10001, "params error: limit out of range"))
        return symbol, spot, limit

    @get("/v5/market/kline")
    async def kline(self, request: web.Request) -> web.Response:
        symbol, inverse = self._market(request)
        q = request.query
        interval = q.get("interval", "")
        limit = int(q.get("limit", "200"))
        if interval not in _INTERVAL_MS or not 1 <= limit <= 1000:
            return _body({}, 10001, "params error: interval or limit invalid")
        span_ms = _INTERVAL_MS[interval]
        end_ms = min(int(q.get("end", self.now_ms)), self.now_ms)
        start_ms = int(q.get("start", end_ms - limit * span_ms))
        offset = _WEEK_OFFSET_MS if interval == "W" else 0
        bars = self.candles(symbol).bars(start_ms, end_ms + 1, span_ms, offset)[-limit:]
        rows = [
            [str(b.ts_ms), b.open, b.high, b.low, b.close]
            + ([b.quote_volume, b.volume] if inverse else [b.volume, b.quote_volume])
            for b in reversed(bars)
        ]
        result = {"symbol": q["symbol"], "category": q.get("category", "linear"), "list": rows}
        return _body(result)

    @get("/v5/market/recent-trade")
    async def recent_trade(self, request: web.Request) -> web.Response:
        symbol, spot, limit = self._limited(request, default=(60, 500), most=(60, 1000))
        trades = [t for t in self.tape(symbol).trades if t.ts_ms <= self.now_ms][-limit:]
        rows = [
            {
                "execId": _exec_id(t, spot),
                "symbol": request.query["symbol"],
                "price": t.price,
                "size": t.size,
                "side": t.side.capitalize(),
                "time": str(t.ts_ms),
                "isBlockTrade": False,
            }
            for t in reversed(trades)
        ]
        return _body({"category": request.query.get("category", "linear"), "list": rows})

    @get("/v5/market/orderbook")
    async def orderbook(self, request: web.Request) -> web.Response:
        symbol, spot, limit = self._limited(request, default=(1, 25), most=(200, 500))
        bids, asks = book_levels(symbol, limit)
        result: dict[str, Any] = {"s": request.query["symbol"]}
        if spot:
            result |= {"a": asks, "b": bids, "ts": self.now_ms, "u": 5920871}
        else:
            result |= {"b": bids, "a": asks, "ts": self.now_ms, "u": 418277, "seq": 515930214}
        return _body(result)

    @get("/v5/market/instruments-info")
    async def instruments(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        category = request.query.get("category", "")
        rows = []
        for (cat, native), (symbol, _) in _MARKETS.items():
            if cat != category:
                continue
            row = {"symbol": native, "status": "Trading", "baseCoin": symbol.base,
                   "quoteCoin": symbol.quote}  # fmt: skip
            if cat != "spot":
                contract = "InversePerpetual" if cat == "inverse" else "LinearPerpetual"
                row |= {"contractType": contract, "settleCoin": symbol.settle or ""}
            rows.append(row)
        if category == "linear":  # a dated future: not a dccd symbol
            rows.append({"symbol": "BTC-29MAR24", "status": "Trading", "baseCoin": "BTC",
                         "quoteCoin": "USDT", "settleCoin": "USDT",
                         "contractType": "LinearFutures"})  # fmt: skip
        return _body({"category": category, "list": rows, "nextPageCursor": ""})


def book_levels(symbol: Symbol, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    """A deterministic book: bids below, asks above a mid, best first."""
    mid = 40_000.0 if symbol.base == "BTC" else 2_500.0
    bids = [
        [str(round(mid - 0.5 - i * 0.5, 1)), str(round(0.1 + i * 0.013, 3))] for i in range(depth)
    ]
    asks = [
        [str(round(mid + 0.5 + i * 0.5, 1)), str(round(0.2 + i * 0.017, 3))] for i in range(depth)
    ]
    return bids, asks


def _exec_id(trade: Trade, spot: bool) -> str:
    return str(trade.trade_id) if spot else str(uuid.UUID(int=trade.trade_id))


def _trade_frame(trades: list[Trade], inverse: bool, *, spot: bool) -> pl.DataFrame:
    return trades_frame(
        ts=[t.ts_ms * NS_PER_MS for t in trades],
        trade_id=[_exec_id(t, spot) for t in trades],
        price=[float(t.price) for t in trades],
        amount=[float(t.size) / float(t.price) if inverse else float(t.size) for t in trades],
        side=[t.side for t in trades],
    )


_TAPES: dict[tuple[str, bool], SeededTape] = {}


def _tape(key: str, inverse: bool) -> SeededTape:
    if (key, inverse) not in _TAPES:
        _TAPES[(key, inverse)] = SeededTape(
            seed=len(key) * 7 + inverse,
            start_ms=TAPE_START_MS,
            count=1_200,
            size_decimals=0 if inverse else 4,
        )
    return _TAPES[(key, inverse)]


def make_app(fake: FakeBybit | None = None, middlewares: Sequence[Any] = ()) -> web.Application:
    """The aiohttp app serving ``fake`` (a fresh one if None) under Bybit's v5 paths."""
    fake = fake or FakeBybit()
    return routes_app(fake, middlewares=middlewares)
