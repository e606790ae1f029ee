"""A fake OKX v5 REST API on loopback, with the real one's quirks.

Quirks reproduced (https://www.okx.com/docs-v5/en/#order-book-trading-market-data):

* every body is ``{"code": "0", "msg": "", "data": [...]}``; errors keep HTTP 200 with a
  nonzero code (``51001`` "Instrument ID does not exist", ``51000`` "Parameter ... error");
* numbers and times are strings; candle and trade lists are newest first;
* ``history-candles``: ``after``/``before`` are exclusive ms bounds, at most 100 rows,
  the newest first; the bar holding "now" is still open (``confirm`` "0");
  6Hutc/12Hutc/1Dutc/1Wutc are UTC-aligned (1Wutc on Mondays);
* ``history-trades``: ``type=1`` pages by ``tradeId``, ``type=2`` by ``ts``; ``after``
  returns strictly older records; at most 100; hundreds of trades share one ms;
* swaps count sizes in contracts (``ctVal`` from ``public/instruments``): 0.01 BTC for
  BTC-USDT-SWAP, 100 USD for the inverse BTC-USD-SWAP; book levels are
  ``[px, sz, "0", numOrders]``.

``FakeOkx.truth_candles`` / ``truth_trades`` give the exact rows a correct source must
store (closed bars only, amounts in the base currency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import NS_PER_MS, Span, Symbol
from tests.fakes.market import SeededCandles, SeededTape, Trade, bars_frame, trades_frame
from tests.fakes.server import ErrorReply, Refusal, get, json_reply, routes_app

__all__ = ["INSTRUMENTS", "NOW_MS", "TAPE_START_MS", "FakeOkx", "book_levels", "make_app"]

NOW_MS = 1_709_251_200_000 + 37 * 60_000 + 12_345  # 2024-03-01T00:37:12.345Z
TAPE_START_MS = NOW_MS - 3 * 3_600_000
_WEEK_OFFSET_MS = 4 * 86_400_000
_BAR_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1H": 3_600_000, "2H": 7_200_000, "4H": 14_400_000, "6Hutc": 21_600_000,
    "12Hutc": 43_200_000, "1Dutc": 86_400_000, "1Wutc": 604_800_000,
}  # fmt: skip

#: instId -> (unified symbol, ctVal or None for spot, inverse, state)
INSTRUMENTS: dict[str, tuple[Symbol, float | None, bool, str]] = {
    "BTC-USDT": (Symbol("BTC", "USDT"), None, False, "live"),
    "ETH-USDT": (Symbol("ETH", "USDT"), None, False, "live"),
    "LUNA-USDT": (Symbol("LUNA", "USDT"), None, False, "suspend"),
    "BTC-USDT-SWAP": (Symbol("BTC", "USDT", "USDT"), 0.01, False, "live"),
    "BTC-USD-SWAP": (Symbol("BTC", "USD", "BTC"), 100.0, True, "live"),
}


#: OKX's own server-side errors, each with the HTTP status its error list gives.
ERROR_REPLIES = (
    ErrorReply(
        503,
        {
            "code": "50001",
            "msg": "Service temporarily unavailable. Please try again later.",
            "data": [],
        },
    ),
    ErrorReply(500, {"code": "50026", "msg": "System error. Try again later.", "data": []}),
    ErrorReply(
        400,
        {
            "code": "50004",
            "msg": "Endpoint request timeout (does not mean that the request was "
            "successful or failed, please check the request result).",
            "data": [],
        },
    ),
    ErrorReply(
        200, {"code": "50013", "msg": "Systems are busy. Please try again later.", "data": []}
    ),
)


def _ok(data: list[Any]) -> web.Response:
    return json_reply({"code": "0", "msg": "", "data": data})


def _err(code: str, msg: str) -> web.Response:
    return json_reply({"code": code, "msg": msg, "data": []})


@dataclass
class FakeOkx:
    """State and truth of the fake; ``make_app(fake)`` serves it."""

    now_ms: int = NOW_MS
    fail_next: list[tuple[str, str]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _tapes: dict[str, SeededTape] = field(default_factory=dict)

    def candles(self, inst_id: str) -> SeededCandles:
        return SeededCandles(f"okx:{inst_id}", 40_000.0 if inst_id.startswith("BTC") else 2_500.0)

    def tape(self, inst_id: str) -> SeededTape:
        if inst_id not in self._tapes:
            swap = INSTRUMENTS[inst_id][1] is not None
            self._tapes[inst_id] = SeededTape(
                seed=sum(map(ord, inst_id)),
                start_ms=TAPE_START_MS,
                count=1_500,
                size_decimals=0 if swap else 4,
            )
        return self._tapes[inst_id]

    # -- truth ------------------------------------------------------------------------

    def truth_candles(self, symbol: Symbol, span: Span, start_ts: int, end_ts: int) -> pl.DataFrame:
        """Closed bars opening in ``[start_ts, end_ts)``, volume in the base currency."""
        inst_id = _inst_id(symbol)
        offset = _WEEK_OFFSET_MS if span.label == "1w" else 0
        open_bar_ms = self.now_ms - (self.now_ms - offset) % span.ms
        end_ms = min(-(-end_ts // NS_PER_MS), open_bar_ms)
        start_ms = -(-start_ts // NS_PER_MS)
        return bars_frame(self.candles(inst_id).bars(start_ms, end_ms, span.ms, offset))

    def truth_trades(self, symbol: Symbol, start_ts: int, end_ts: int) -> pl.DataFrame:
        """Trades of ``[start_ts, end_ts)``, sorted by (ts, id), amounts in base."""
        inst_id = _inst_id(symbol)
        _, ct_val, inverse, _ = INSTRUMENTS[inst_id]
        trades = [t for t in self.tape(inst_id).trades if start_ts <= t.ts_ms * NS_PER_MS < end_ts]

        def amount(t: Trade) -> float:
            if ct_val is None:
                return float(t.size)
            if inverse:
                return float(t.size) * ct_val / float(t.price)
            return float(t.size) * ct_val

        return trades_frame(
            ts=[t.ts_ms * NS_PER_MS for t in trades],
            trade_id=[str(t.trade_id) for t in trades],
            price=[float(t.price) for t in trades],
            amount=[amount(t) for t in trades],
            side=[t.side for t in trades],
        )

    # -- handlers ---------------------------------------------------------------------

    def _instrument(self, request: web.Request) -> str:
        self.requests.append((request.path, dict(request.query)))
        if self.fail_next:
            raise Refusal(_err(*self.fail_next.pop(0)))
        inst_id = request.query.get("instId", "")
        if inst_id not in INSTRUMENTS or INSTRUMENTS[inst_id][3] != "live":
            raise Refusal(_err("51001", "Instrument ID does not exist"))
        return inst_id

    @staticmethod
    def _limit(request: web.Request, most: int, default: int) -> int | None:
        limit = int(request.query.get("limit", default))
        return limit if 1 <= limit <= most else None

    @get("/api/v5/market/history-candles")
    async def history_candles(self, request: web.Request) -> web.Response:
        inst_id = self._instrument(request)
        bar = request.query.get("bar", "1m")
        limit = self._limit(request, 100, 100)
        if bar not in _BAR_MS:
            return _err("51000", "Parameter bar error")
        if limit is None:
            return _err("51000", "Parameter limit error")
        span_ms = _BAR_MS[bar]
        offset = _WEEK_OFFSET_MS if bar == "1Wutc" else 0
        open_bar_ms = self.now_ms - (self.now_ms - offset) % span_ms
        after = int(request.query.get("after", open_bar_ms + 1))
        before = int(request.query.get("before", -1))
        lo = max(before + 1, after - 200 * span_ms, 0)
        bars = self.candles(inst_id).bars(lo, min(after, open_bar_ms + 1), span_ms, offset)
        rows = [
            [
                str(b.ts_ms),
                b.open,
                b.high,
                b.low,
                b.close,
                *_volumes(inst_id, b.volume, b.quote_volume),
                "0" if b.ts_ms == open_bar_ms else "1",
            ]
            for b in reversed(bars)
        ]
        return _ok(rows[:limit])

    @get("/api/v5/market/history-trades")
    async def history_trades(self, request: web.Request) -> web.Response:
        inst_id = self._instrument(request)
        limit = self._limit(request, 100, 100)
        page_type = request.query.get("type", "1")
        if limit is None or page_type not in ("1", "2"):
            return _err("51000", "Parameter limit or type error")
        trades = self.tape(inst_id).trades
        key = (lambda t: t.trade_id) if page_type == "1" else (lambda t: t.ts_ms)
        if "after" in request.query:
            after = int(request.query["after"])
            trades = [t for t in trades if key(t) < after]
        if "before" in request.query:
            before = int(request.query["before"])
            trades = [t for t in trades if key(t) > before]
        rows = [
            {"instId": inst_id, "side": t.side, "sz": t.size, "px": t.price,
             "tradeId": str(t.trade_id), "ts": str(t.ts_ms), "source": "0"}
            for t in reversed(trades[-limit:])
        ]  # fmt: skip
        return _ok(rows)

    @get("/api/v5/market/books")
    async def books(self, request: web.Request) -> web.Response:
        inst_id = self._instrument(request)
        depth = int(request.query.get("sz", "1"))
        if not 1 <= depth <= 400:
            return _err("51000", "Parameter sz error")
        bids, asks = book_levels(inst_id, depth)
        return _ok([{"asks": asks, "bids": bids, "ts": str(self.now_ms)}])

    @get("/api/v5/public/instruments")
    async def instruments(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        inst_type = request.query.get("instType", "")
        wanted = request.query.get("instId")
        rows = []
        for inst_id, (symbol, ct_val, inverse, state) in INSTRUMENTS.items():
            kind = "SPOT" if ct_val is None else "SWAP"
            if kind != inst_type or (wanted and wanted != inst_id):
                continue
            row: dict[str, Any] = {"instType": kind, "instId": inst_id, "state": state}
            if ct_val is None:
                row |= {"baseCcy": symbol.base, "quoteCcy": symbol.quote, "ctVal": ""}
            else:
                row |= {
                    "baseCcy": "", "quoteCcy": "", "settleCcy": symbol.settle,
                    "ctVal": f"{ct_val:g}", "ctValCcy": symbol.quote if inverse else symbol.base,
                    "ctType": "inverse" if inverse else "linear",
                }  # fmt: skip
            rows.append(row)
        if wanted and not rows:
            return _err("51001", "Instrument ID does not exist")
        return _ok(rows)


def _inst_id(symbol: Symbol) -> str:
    for inst_id, (sym, *_rest) in INSTRUMENTS.items():
        if sym == symbol:
            return inst_id
    raise KeyError(symbol)


def _volumes(inst_id: str, base: str, quote: str) -> list[str]:
    """[vol, volCcy, volCcyQuote]: spot vol is base; swap vol is contracts, volCcy base."""
    ct_val = INSTRUMENTS[inst_id][1]
    if ct_val is None:
        return [base, quote, quote]
    return [str(round(float(base) / 0.01)), base, quote]


def book_levels(inst_id: str, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    """A deterministic book, best first; swap sizes are whole contracts."""
    mid = 40_000.0 if inst_id.startswith("BTC") else 2_500.0
    swap = INSTRUMENTS[inst_id][1] is not None
    bids, asks = [], []
    for i in range(depth):
        bid_sz = str(10 + i) if swap else str(round(0.1 + i * 0.013, 3))
        ask_sz = str(20 + i) if swap else str(round(0.2 + i * 0.017, 3))
        bids.append([str(round(mid - 0.1 - i * 0.1, 1)), bid_sz, "0", str(1 + i % 4)])
        asks.append([str(round(mid + 0.1 + i * 0.1, 1)), ask_sz, "0", str(1 + i % 3)])
    return bids, asks


def make_app(fake: FakeOkx | None = None, middlewares: Sequence[Any] = ()) -> web.Application:
    """The aiohttp app serving ``fake`` (a fresh one if None) under OKX's v5 paths."""
    fake = fake or FakeOkx()
    return routes_app(fake, middlewares=middlewares)
