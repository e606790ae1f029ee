"""``BitmexSource``: the page-level methods of the Source contract for BitMEX.

Trades are paged by time, and BitMEX prints many trades in one millisecond. A
"last ts + 1 ms" cursor would lose them, so the cursor is (ms, offset): the next page
asks for ``startTime`` = the last page's newest millisecond and skips, with the
documented row offset ``start``, the trades of that millisecond already returned. The
window is drained when a page comes back shorter than ``count``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import NS_PER_MS, DataType, Span, Symbol, now_ns
from dccd_core.sources.base import Endpoints, Source, TradePage
from dccd_core.sources.columns import ceil_ms
from dccd_core.sources.ws import WsSubscription

from . import parse, rest
from .capability import CAPABILITY, PAGE_LIMIT
from .symbols import PERPETUAL_TYPES, SPOT_TYPES, from_native, to_native
from .ws import BitmexWs

__all__ = ["BitmexSource"]

#: The header ``observe`` reads on the weight limiter; BitMEX sends what is *left*
#: (``x-ratelimit-remaining`` of ``x-ratelimit-limit``), the source turns it into this.
USED_HEADER = "x-dccd-ratelimit-used"


class BitmexSource(BitmexWs, Source):
    """BitMEX public API: bucketed candles, trades and L2 book over REST, and WebSocket."""

    id: ClassVar[str] = "bitmex"
    #: trdMatchID is a UUID (no order)
    monotonic_trade_ids: ClassVar[bool] = False
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(
        rest_url="https://www.bitmex.com", ws_url="wss://ws.bitmex.com"
    )
    check_payload = staticmethod(parse.check_payload)
    #: documented error codes -> transient / rate limit / permanent (HTTP client)
    errors = rest.ERRORS
    usage_header: ClassVar[str] = USED_HEADER

    def __init__(self, http: Any, endpoints: Endpoints | None = None) -> None:
        Source.__init__(self, http, endpoints)
        BitmexWs.__init__(self)

    # -- markets ---------------------------------------------------------------

    def native_symbol(self, symbol: Symbol) -> str:
        return to_native(symbol)

    async def fetch_instruments(self) -> dict[str, tuple[str, parse.ContractSpec]]:
        """Active instruments and their contract terms (cached per source)."""
        if self.instruments is None:
            data = await self._get(rest.build_instruments_request())
            self.instruments = parse.parse_instruments(data)
        return self.instruments

    async def fetch_symbols(self) -> set[Symbol] | None:
        instruments = await self.fetch_instruments()
        return {
            from_native(name)
            for name, (typ, _) in instruments.items()
            if typ in PERPETUAL_TYPES or typ in SPOT_TYPES
        }

    async def prepare_ws(self, sub: WsSubscription) -> None:
        """Fetch the contract terms before streaming (the WS parsers are synchronous).

        Book sizes are contracts and need them; a quanto book is refused here, before
        connecting, rather than on its first frame.
        """
        await self.fetch_instruments()
        if sub.data_type is DataType.BOOK:
            for symbol in sub.symbols:
                spec = await self.contract_spec(symbol)
                spec.base_amount(1.0, 1.0, f"bitmex book {symbol}")  # NoCapability for quantos

    async def contract_spec(self, symbol: Symbol) -> parse.ContractSpec:
        native = self.native_symbol(symbol)
        found = (await self.fetch_instruments()).get(native)
        return found[1] if found else parse.ContractSpec(inverse=native.endswith("USD"))

    # -- pages -----------------------------------------------------------------

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        feature = CAPABILITY.require(DataType.OHLC, span=span)
        request = rest.build_candles_request(self.native_symbol(symbol), span, start_ts, end_ts)
        frame = parse.parse_candles(await self._get(request, weight=feature.weight), span)
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page from ``cursor`` = (start ms, rows to skip at that ms)."""
        feature = CAPABILITY.require(DataType.TRADES)
        native = self.native_symbol(symbol)
        start_ms, offset = cursor if cursor is not None else (start_ts // NS_PER_MS, 0)
        # endTime = the first ms not wanted: whether BitMEX treats it as inclusive or
        # not, nothing before the window end is cut (spill is clipped by the paginator).
        request = rest.build_trades_request(native, start_ms, offset, ceil_ms(end_ts))
        data = await self._get(request, weight=feature.weight)
        page = parse.parse_trades(data, await self._spec_if_needed(symbol, data))
        if page.height < PAGE_LIMIT:
            return TradePage(page, None)
        last_ms = int(page["ts"].max()) // NS_PER_MS  # type: ignore[arg-type]
        if last_ms == start_ms:  # the whole page is one millisecond: skip further in it
            return TradePage(page, (start_ms, offset + page.height))
        at_last = page.filter(pl.col("ts") == last_ms * NS_PER_MS).height
        return TradePage(page, (last_ms, at_last))

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        feature = CAPABILITY.require(DataType.BOOK, depth=depth)
        spec = await self.contract_spec(symbol)
        request = rest.build_book_request(self.native_symbol(symbol), depth)
        data = await self._get(request, weight=feature.weight)
        return parse.parse_book(data, now_ns(), spec)

    # -- helpers ---------------------------------------------------------------

    async def _spec_if_needed(self, symbol: Symbol, data: Any) -> parse.ContractSpec | None:
        """Contract terms, fetched only for rows without ``homeNotional`` (rare)."""
        if isinstance(data, list) and any(
            isinstance(r, dict) and r.get("homeNotional") is None for r in data
        ):
            return await self.contract_spec(symbol)
        return None

    async def _get(self, request: rest.Request, *, weight: int = 1) -> Any:  # type: ignore[override]
        path, params = request
        response = await self.http.get(path, params, weight=weight)
        self._observe_rate_limit(response.headers)
        parse.check_payload(response.data)
        return response.data

    def _observe_rate_limit(self, headers: Any) -> None:
        """Tell the limiter how much of the budget is used (BitMEX reports what is left)."""
        limiter = getattr(self.http, "limiter", None)
        if limiter is None or getattr(limiter, "usage_header", None) != USED_HEADER:
            return
        try:
            limit = int(headers.get("x-ratelimit-limit") or CAPABILITY.weight_per_minute)
            remaining = int(headers["x-ratelimit-remaining"])
        except (KeyError, TypeError, ValueError):
            return
        scaled = round((limit - remaining) * limiter.weight_per_minute / max(limit, 1))
        limiter.observe({USED_HEADER: str(scaled)})
