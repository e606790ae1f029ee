"""A fake Coinbase Exchange REST API on loopback, speaking its real protocol and quirks.

Quirks reproduced (docs: https://docs.cdp.coinbase.com/exchange/reference/):

* candles ``[time_s, low, high, open, close, volume]`` newest first, numbers as JSON
  numbers; only granularities 60/300/900/3600/21600/86400; more than 300 bars -> 400;
  bars open in ``[start, end)`` (the bar starting at ``end`` is not returned);
* trades newest first, ``limit`` <= 1000, ``after=<id>`` returns older trades (ids
  below it), ``before=<id>`` newer ones; ``CB-AFTER``/``CB-BEFORE`` headers; ``side`` is
  the maker's; ``time`` ISO-8601 with microseconds; ``trade_id`` a JSON number; no
  time parameter at all;
* errors are ``{"message": "..."}`` with a 4xx (unknown product -> 404 NotFound).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
from aiohttp import web

from dccd_core.domain import Span, Symbol, to_ns
from tests.fakes.market import TapeMarket, bar_at, cent_bars_frame
from tests.fakes.server import ErrorReply, Refusal, get, json_reply, query_ints, routes_app

__all__ = ["CoinbaseFake"]

_GRANULARITIES = (60, 300, 900, 3_600, 21_600, 86_400)
T0_US = to_ns("2024-01-01T00:00:00Z") // 1_000


#: Coinbase's own 5xx replies: ``{"message": ...}`` (no codes), or a gateway page.
ERROR_REPLIES = (
    ErrorReply(500, {"message": "Internal server error"}),
    ErrorReply(503, {"message": "Service Unavailable"}),
    ErrorReply(502, "<html><head><title>502 Bad Gateway</title></head></html>"),
)


def _iso(ts_us: int) -> str:
    dt = datetime.fromtimestamp(ts_us // 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_us % 1_000_000:06d}Z"


@dataclass
class CoinbaseFake(TapeMarket):
    """Deterministic Coinbase: BTC-USD and ETH-USD tapes starting 2024-01-01."""

    MARKETS = ("BTC-USD", "ETH-USD")

    seed: str = "coinbase"
    n_trades: int = 4_500
    #: Bursts of trades sharing one microsecond: index -> size. The 1200-trade burst is
    #: longer than a page, so every walk through it splits it at a page boundary.
    bursts: tuple[tuple[int, int], ...] = ((995, 12), (1_500, 1_200), (3_000, 40))
    start_us: int = T0_US
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    # -- truth ----------------------------------------------------------------------

    def truth_trades(self, symbol: Symbol, start: int, end: int) -> pl.DataFrame:
        """The trades of ``[start, end)`` in the trades schema (taker side), by (ts, id)."""
        return self.tape_truth(f"{symbol.base}-{symbol.quote}", start, end)

    def truth_candles(self, symbol: Symbol, span: Span, start: int, end: int) -> pl.DataFrame:
        """The bars opening in ``[start, end)`` (holes left out), ohlc schema."""
        seed = f"{self.seed}:{symbol.base}-{symbol.quote}"
        first = span.floor(start) + (span.ns if span.floor(start) < start else 0)
        bars = [bar_at(seed, t // 10**9, span.seconds) for t in range(first, end, span.ns)]
        kept = [b for b in bars if b is not None]
        return cent_bars_frame(kept, with_counts=False)

    @property
    def newest_ts(self) -> int:
        """ns of the newest trade of BTC-USD."""
        return self.tapes["BTC-USD"][-1][1] * 1_000

    # -- app ------------------------------------------------------------------------

    def app(self) -> web.Application:
        return routes_app(self)

    def _log(self, request: web.Request) -> None:
        self.requests.append((request.path, dict(request.query)))

    @get("/products")
    async def _products(self, request: web.Request) -> web.Response:
        self._log(request)
        return json_reply([
            {"id": p, "base_currency": p.split("-")[0], "quote_currency": p.split("-")[1],
             "status": "online", "trading_disabled": False}
            for p in self.tapes
        ] + [{"id": "CGLD-USD", "base_currency": "CGLD", "quote_currency": "USD",
              "status": "online"},
             {"id": "OLD-USD", "base_currency": "OLD", "quote_currency": "USD",
              "status": "delisted"}])

    def _product(self, request: web.Request) -> str:
        self._log(request)
        product = request.match_info["product"]
        if product not in self.tapes:
            raise Refusal(json_reply({"message": "NotFound"}, 404))
        return product

    @get("/products/{product}/candles")
    async def _candles(self, request: web.Request) -> web.Response:
        product = self._product(request)
        try:
            gran = int(request.query["granularity"])
            start_s = to_ns(request.query["start"]) // 10**9
            end_s = to_ns(request.query["end"]) // 10**9
        except (KeyError, ValueError):
            return json_reply({"message": "Invalid request"}, 400)
        if gran not in _GRANULARITIES:
            return json_reply({"message": "Unsupported granularity"}, 400)
        if (end_s - start_s) // gran > 300:
            return json_reply({"message": "granularity too small for the requested time range. "
                          "Count of aggregations requested exceeds 300"}, 400)
        first = start_s - start_s % gran + (gran if start_s % gran else 0)
        seed = f"{self.seed}:{product}"
        rows = []
        for t in range(first, end_s, gran):
            bar = bar_at(seed, t, gran)
            if bar is not None:
                rows.append([t, bar.low, bar.high, bar.open, bar.close, bar.volume])
        return json_reply(rows[::-1])

    @get("/products/{product}/trades")
    async def _trades(self, request: web.Request) -> web.Response:
        product = self._product(request)
        limit, after, before = query_ints(
            request, {"limit": 1000, "after": None, "before": None},
            json_reply({"message": "Invalid pagination parameter"}, 400),
        )  # fmt: skip
        assert limit is not None
        if not 1 <= limit <= 1000:
            return json_reply({"message": "Limit must be between 1 and 1000"}, 400)
        tape = self.existing(product)
        first_id = self.tapes[product][0][0]
        if after is not None:
            hi = max(0, min(after - first_id, len(tape)))  # ids below ``after``
            chosen = tape[max(0, hi - limit):hi]
        elif before is not None:
            lo = max(0, before - first_id + 1)
            chosen = tape[lo:lo + limit]
        else:
            chosen = tape[-limit:]
        body = [
            {"trade_id": r[0], "side": "sell" if r[4] else "buy",  # maker side
             "size": f"{r[3]:.8f}", "price": f"{r[2]:.8f}", "time": _iso(r[1])}
            for r in reversed(chosen)
        ]
        headers = {}
        if chosen:
            headers = {"CB-BEFORE": str(chosen[-1][0]), "CB-AFTER": str(chosen[0][0])}
        return json_reply(body, headers=headers)

    @get("/products/{product}/book")
    async def _book(self, request: web.Request) -> web.Response:
        self._product(request)  # 404 for an unknown product
        if request.query.get("level") != "2":
            return json_reply({"message": "Invalid level"}, 400)
        bids = [[f"{40_000 - 0.5 * i:.2f}", f"{1 + i * 0.25:.8f}", 1 + i % 3] for i in range(60)]
        asks = [[f"{40_000.5 + 0.5 * i:.2f}", f"{2 + i * 0.5:.8f}", 1 + i % 2] for i in range(60)]
        return json_reply({"bids": bids, "asks": asks, "sequence": 71023654321,
                      "auction_mode": False, "auction": None,
                      "time": "2024-01-01T00:00:00.123456Z"})
