"""BitMEX REST: pure request builders and the page-level ``BitmexRest``.

Times are ISO-8601 UTC with milliseconds. Table queries page with ``count`` (at most
1,000) and the row offset ``start``; ``reverse=false`` returns oldest first.

Trades are paged by time, and BitMEX prints many trades in one millisecond. A
"last ts + 1 ms" cursor would lose them, so the cursor is (ms, offset): the next page
asks for ``startTime`` = the last page's newest millisecond and skips, with the
documented row offset ``start``, the trades of that millisecond already returned. The
window is drained when a page comes back shorter than ``count``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import NS_PER_MS, DataType, Span, Symbol, errors, iso_datetime, now_ns
from dccd_core.transport.errors import TRANSIENT, ErrorTable
from dccd_core.transport.http import HttpClient, JsonResponse
from dccd_core.transport.limiter import WeightLimiter

from .. import columns, windows
from ..base import Endpoints, Request, Source, TradePage
from .capability import BIN_SIZES, CAPABILITY, PAGE_LIMIT, REST_URL, WS_URL
from .funding import parse_funding
from .parse import (
    ContractSpec,
    check_payload,
    parse_book,
    parse_candles,
    parse_instruments,
    parse_trades,
)
from .symbols import PERPETUAL_TYPES, SPOT_TYPES, from_native, to_native

__all__ = [
    "ERRORS",
    "USED_HEADER",
    "BitmexRest",
    "bin_size",
    "build_book_request",
    "build_candles_request",
    "build_funding_request",
    "build_symbols_request",
    "build_trades_request",
    "iso_ms",
    "observe_remaining",
]

#: The header ``observe`` reads on the weight limiter; BitMEX sends what is *left*
#: (``x-ratelimit-remaining`` of ``x-ratelimit-limit``), ``observe_remaining`` turns it
#: into this.
USED_HEADER = "x-dccd-ratelimit-used"

#: BitMEX's documented errors (bitmex.com/app/restAPI, "Overload"): no codes, an
#: ``{"error": {"message", "name"}}`` body. Load shedding answers HTTP 503 with the
#: message below: the request never reached the engine, retry after >= 500 ms.
ERRORS = ErrorTable.of(
    {
        "The system is currently overloaded. Please try again later.": TRANSIENT,
    }
)


def iso_ms(ms: int) -> str:
    """Epoch ms -> ``2024-01-01T00:00:01.500Z`` (always three decimals)."""
    text = iso_datetime(ms * NS_PER_MS).rstrip("Z")
    head, _, frac = text.partition(".")
    return f"{head}.{frac.ljust(3, '0')[:3]}Z"


def bin_size(span: Span) -> str:
    """The BitMEX ``binSize`` of ``span``, or ``NoCapability`` naming the spans."""
    if span not in BIN_SIZES:
        CAPABILITY.require(DataType.OHLC, span=span)
        raise errors.NoCapability(f"bitmex has no {span} candles")  # pragma: no cover
    return BIN_SIZES[span]


def build_candles_request(native: str, span: Span, start_ts: int, end_ts: int) -> Request:
    """Bars OPENING in ``[start_ts, end_ts)``: BitMEX stamps bars at their close, so
    ask for stamps in ``[start_ts + span, end_ts + span)``."""
    first_close_ms = columns.ceil_ms(start_ts + span.ns)
    last_close_ms = columns.ceil_ms(end_ts + span.ns) - 1
    bars = max(1, -(-(end_ts - start_ts) // span.ns))
    params: dict[str, str | int] = {
        "binSize": bin_size(span),
        "symbol": native,
        "startTime": iso_ms(first_close_ms),
        "endTime": iso_ms(last_close_ms),
        "count": min(PAGE_LIMIT, bars),
        "reverse": "false",
        "partial": "false",
    }
    return Request("/api/v1/trade/bucketed", params, CAPABILITY.require(DataType.OHLC).weight)


def build_trades_request(native: str, start_ms: int, offset: int, end_ms: int) -> Request:
    """Trades from ``start_ms`` (inclusive), skipping the first ``offset`` rows there."""
    params: dict[str, str | int] = {
        "symbol": native,
        "startTime": iso_ms(start_ms),
        "endTime": iso_ms(end_ms),
        "count": PAGE_LIMIT,
        "start": offset,
        "reverse": "false",
    }
    return Request("/api/v1/trade", params, CAPABILITY.require(DataType.TRADES).weight)


def build_funding_request(native: str, start_ts: int, end_ts: int) -> Request:
    """Funding times in ``[start_ts, end_ts)``, oldest first (see ``funding.py``)."""
    params: dict[str, str | int] = {
        "symbol": native,
        "startTime": iso_ms(columns.ceil_ms(start_ts)),
        "endTime": iso_ms(columns.ceil_ms(end_ts) - 1),
        "count": PAGE_LIMIT,
        "reverse": "false",
    }
    return Request("/api/v1/funding", params, CAPABILITY.require(DataType.FUNDING).weight)


def build_book_request(native: str, depth: int) -> Request:
    """``/api/v1/orderBook/L2?symbol=XBTUSD&depth=25`` (depth per side; 0 = full book)."""
    params: dict[str, str | int] = {"symbol": native, "depth": depth}
    return Request("/api/v1/orderBook/L2", params, CAPABILITY.require(DataType.BOOK).weight)


def build_symbols_request() -> Request:
    """``/api/v1/instrument/active``: every listed instrument and its contract terms."""
    return Request("/api/v1/instrument/active")


def observe_remaining(limiter: WeightLimiter, headers: Mapping[str, str]) -> None:
    """Tell the limiter how much of its budget is used: BitMEX reports what is *left*
    (``x-ratelimit-remaining`` of ``x-ratelimit-limit``), scaled here to the limiter's
    weight per minute. Only a limiter reading ``USED_HEADER`` is told."""
    if limiter.usage_header != USED_HEADER:
        return
    try:
        limit = int(headers.get("x-ratelimit-limit") or CAPABILITY.weight_per_minute)
        remaining = int(headers["x-ratelimit-remaining"])
    except (KeyError, TypeError, ValueError):
        return
    scaled = round((limit - remaining) * limiter.weight_per_minute / max(limit, 1))
    limiter.observe({USED_HEADER: str(scaled)})


class BitmexRest(Source):
    """BitMEX public API: bucketed candles, trades and L2 book pages over REST.

    Trade ids (``trdMatchID``) are UUIDs: no order, so not ``monotonic_trade_ids``.
    """

    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(REST_URL, WS_URL)
    check_payload = staticmethod(check_payload)
    errors = ERRORS
    usage_header: ClassVar[str] = USED_HEADER
    #: native symbol -> (typ, contract terms), from ``/instrument/active`` (once per source)
    instruments: dict[str, tuple[str, ContractSpec]] | None = None

    # -- markets ---------------------------------------------------------------

    def native_symbol(self, symbol: Symbol) -> str:
        return to_native(symbol)

    async def fetch_instruments(self) -> dict[str, tuple[str, ContractSpec]]:
        """Active instruments and their contract terms (cached per source)."""
        if self.instruments is None:
            self.instruments = parse_instruments(await self._get(build_symbols_request()))
        return self.instruments

    async def fetch_symbols(self) -> set[Symbol] | None:
        instruments = await self.fetch_instruments()
        return {
            from_native(name)
            for name, (typ, _) in instruments.items()
            if typ in PERPETUAL_TYPES or typ in SPOT_TYPES
        }

    async def contract_spec(self, symbol: Symbol) -> ContractSpec:
        native = self.native_symbol(symbol)
        found = (await self.fetch_instruments()).get(native)
        return found[1] if found else ContractSpec(inverse=native.endswith("USD"))

    # -- pages -----------------------------------------------------------------

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        CAPABILITY.require(DataType.OHLC, span=span)
        request = build_candles_request(self.native_symbol(symbol), span, start_ts, end_ts)
        frame = parse_candles(await self._get(request), span)
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        """One page from ``cursor`` = (start ms, rows to skip at that ms)."""
        native = self.native_symbol(symbol)
        start_ms, offset = cursor if cursor is not None else (start_ts // NS_PER_MS, 0)
        # endTime = the first ms not wanted: whether BitMEX treats it as inclusive or
        # not, nothing before the window end is cut (spill is clipped by the paginator).
        data = await self._get(
            build_trades_request(native, start_ms, offset, columns.ceil_ms(end_ts))
        )
        page = parse_trades(data, await self._spec_if_needed(symbol, data))
        if page.height < PAGE_LIMIT:
            return TradePage(page, None)
        last_ms = int(page["ts"].max()) // NS_PER_MS  # type: ignore[arg-type]
        if last_ms == start_ms:  # the whole page is one millisecond: skip further in it
            return TradePage(page, (start_ms, offset + page.height))
        at_last = page.filter(pl.col("ts") == last_ms * NS_PER_MS).height
        return TradePage(page, (last_ms, at_last))

    async def fetch_funding(self, symbol: Symbol, start_ts: int, end_ts: int) -> pl.DataFrame:
        windows.require_perpetual(
            symbol.is_perpetual, f"bitmex funding needs a perpetual like BTC/USD:BTC, not {symbol}"
        )
        request = build_funding_request(self.native_symbol(symbol), start_ts, end_ts)
        return parse_funding(await self._get(request))

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        CAPABILITY.require(DataType.BOOK, depth=depth)
        spec = await self.contract_spec(symbol)
        data = await self._get(build_book_request(self.native_symbol(symbol), depth))
        return parse_book(data, now_ns(), spec)

    # -- helpers ---------------------------------------------------------------

    async def _spec_if_needed(self, symbol: Symbol, data: Any) -> ContractSpec | None:
        """Contract terms, fetched only for rows without ``homeNotional`` (rare)."""
        if isinstance(data, list) and any(
            isinstance(r, dict) and r.get("homeNotional") is None for r in data
        ):
            return await self.contract_spec(symbol)
        return None

    async def _response(self, request: Request) -> JsonResponse:
        """Send as every source does, then feed BitMEX's budget headers to the limiter."""
        response = await super()._response(request)
        if isinstance(self.http, HttpClient) and self.http.limiter is not None:
            observe_remaining(self.http.limiter, response.headers)
        return response
