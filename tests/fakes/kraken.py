"""A fake Kraken spot REST API on loopback, speaking its real protocol and quirks.

Quirks reproduced (docs: https://docs.kraken.com/api/docs/rest-api/get-recent-trades):

* every answer is ``{"error": [...], "result": {...}}`` with HTTP 200, errors included
  (``EQuery:Unknown asset pair``, ``EGeneral:Invalid arguments``);
* results are keyed by the internal pair name (``XXBTZUSD``) whatever was asked
  (``XBTUSD``);
* OHLC: only the most recent 720 bars exist, the last one still open, prices as
  strings, ``last`` = the newest committed bar; rows from the bar containing ``since``;
* Trades: ``since`` in ns, exclusive; 1000 a page oldest first; float-second times;
  ``last`` = the ns time of the page's last trade (exclusive: re-used as ``since`` it
  skips the rest of a same-microsecond burst that the page boundary split);
  ``legacy=True`` drops the 7th field (trade id) as older rows had none;
* Depth: ``count`` at most 500.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from aiohttp import web

from dccd_core.domain import Span, Symbol, to_ns
from tests.fakes.market import TapeMarket, bar_at, cent_bars_frame
from tests.fakes.server import ErrorReply, Refusal, get, json_reply, query_ints, routes_app

__all__ = ["KrakenFake"]

_PAIRS = {  # internal name -> (altname, wsname)
    "XXBTZUSD": ("XBTUSD", "XBT/USD"),
    "XETHZUSD": ("ETHUSD", "ETH/USD"),
    "XDGUSD": ("XDGUSD", "XDG/USD"),
}
_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
T0_US = to_ns("2024-03-01T00:00:00Z") // 1_000


#: Kraken's own service errors: usually in an HTTP 200 ``error`` list, sometimes with a
#: 5xx from its edge.
ERROR_REPLIES = (
    ErrorReply(503, {"error": ["EService:Unavailable"]}),
    ErrorReply(200, {"error": ["EService:Unavailable"]}),
    ErrorReply(200, {"error": ["EService:Busy"]}),
    ErrorReply(500, {"error": ["EGeneral:Internal error"]}),
)


def _ok(result: Any) -> web.Response:
    return json_reply({"error": [], "result": result})


def _err(*errors: str) -> web.Response:
    return json_reply({"error": list(errors)})


@dataclass
class KrakenFake(TapeMarket):
    """Deterministic Kraken: XBT/USD, ETH/USD and XDG/USD tapes from 2024-03-01."""

    MARKETS = tuple(_PAIRS)

    seed: str = "kraken"
    n_trades: int = 3_600
    #: same-µs bursts (index, size); the first straddles the first page boundary of a
    #: walk from T0 (later boundaries shift as each page re-asks the last µs)
    bursts: tuple[tuple[int, int], ...] = ((990, 25), (1_995, 9), (2_998, 60))
    start_us: int = T0_US
    legacy: bool = False
    now_s: int = field(default_factory=lambda: int(time.time()))
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    # -- truth ----------------------------------------------------------------------

    @staticmethod
    def internal(symbol: Symbol) -> str:
        alt = {"BTC": "XBT", "DOGE": "XDG"}
        name = alt.get(symbol.base, symbol.base) + symbol.quote
        return next(k for k, (a, _) in _PAIRS.items() if a == name)

    def truth_trades(self, symbol: Symbol, start: int, end: int) -> pl.DataFrame:
        return self.tape_truth(self.internal(symbol), start, end)

    def open_bar_s(self, span: Span) -> int:
        return self.now_s - self.now_s % span.seconds

    def open_bar_s_at(self, span_s: int) -> int:
        """The open time (s) of the bar in progress for a span of ``span_s`` seconds."""
        return self.now_s - self.now_s % span_s

    def truth_candles(self, symbol: Symbol, span: Span, start: int, end: int) -> pl.DataFrame:
        """Committed bars opening in ``[start, end)`` among the last 720 (open bar excluded)."""
        seed = f"{self.seed}:{self.internal(symbol)}"
        open_s = self.open_bar_s(span)
        bars = [bar_at(seed, t, span.seconds) for t in
                range(open_s - 719 * span.seconds, open_s, span.seconds)]
        kept = [b for b in bars if b is not None and start <= b.ts_s * 10**9 < end]
        return cent_bars_frame(kept, with_counts=True)

    # -- app ------------------------------------------------------------------------

    def app(self) -> web.Application:
        return routes_app(self)

    def _pair(self, request: web.Request) -> str:
        self.requests.append((request.path, dict(request.query)))
        asked = request.query.get("pair", "")
        for internal, (alt, _) in _PAIRS.items():
            if asked in (internal, alt):
                return internal
        raise Refusal(_err("EQuery:Unknown asset pair"))

    @get("/0/public/AssetPairs")
    async def _asset_pairs(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query)))
        result = {
            k: {"altname": alt, "wsname": ws, "base": "X" + ws.split("/")[0],
                "quote": "Z" + ws.split("/")[1], "status": "online"}
            for k, (alt, ws) in _PAIRS.items()
        }
        return _ok(result)

    @get("/0/public/OHLC")
    async def _ohlc(self, request: web.Request) -> web.Response:
        pair = self._pair(request)
        try:
            interval = int(request.query.get("interval", 1))
            since = int(request.query.get("since", 0))
        except ValueError:
            return _err("EGeneral:Invalid arguments")
        if interval not in _INTERVALS:
            return _err("EGeneral:Invalid arguments")
        span_s = interval * 60
        open_s = self.now_s - self.now_s % span_s
        rows: list[list[Any]] = []
        for t in range(open_s - 719 * span_s, open_s + span_s, span_s):
            if t + span_s <= since:
                continue
            bar = bar_at(f"{self.seed}:{pair}", t, span_s)
            if bar is None:
                continue
            rows.append([t, f"{bar.open:.2f}", f"{bar.high:.2f}", f"{bar.low:.2f}",
                         f"{bar.close:.2f}", f"{bar.vwap:.1f}", f"{bar.volume:.8f}", bar.count])
        return _ok({pair: rows, "last": open_s - span_s})

    @get("/0/public/Trades")
    async def _trades(self, request: web.Request) -> web.Response:
        pair = self._pair(request)
        count, since = query_ints(
            request, {"count": 1000, "since": None}, _err("EGeneral:Invalid arguments")
        )
        assert count is not None
        if not 1 <= count <= 1000:
            return _err("EGeneral:Invalid arguments:count")
        tape = self.existing(pair)
        if since is None:
            chosen = tape[-count:]
        else:  # ts_us * 1000 > since  <=>  ts_us > since // 1000
            first = self.after_ts(pair, since // 1_000)
            chosen = tape[first:first + count]
        rows = []
        for trade_id, ts_us, price, amount, buys in chosen:
            row: list[Any] = [f"{price:.5f}", f"{amount:.8f}", ts_us / 1_000_000,
                              "b" if buys else "s", "l" if trade_id % 3 else "m", ""]
            if not self.legacy:
                row.append(trade_id)
            rows.append(row)
        last = chosen[-1][1] * 1_000 if chosen else (since or 0)
        return _ok({pair: rows, "last": str(last)})

    @get("/0/public/Depth")
    async def _depth(self, request: web.Request) -> web.Response:
        pair = self._pair(request)
        count = int(request.query.get("count", 100))
        if not 1 <= count <= 500:
            return _err("EGeneral:Invalid arguments")
        asks = [[f"{40_000.1 + 0.1 * i:.5f}", f"{1 + i % 7:.3f}", 1709251200 + i]
                for i in range(count)]
        bids = [[f"{40_000.0 - 0.1 * i:.5f}", f"{2 + i % 5:.3f}", 1709251200 + i]
                for i in range(count)]
        return _ok({pair: {"asks": asks, "bids": bids}})
