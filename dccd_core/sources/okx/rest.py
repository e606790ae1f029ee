"""OKX v5 REST: request builders and the page-level ``OkxRest``.

Trade paging: OKX pages history backwards and ``after`` is exclusive. The first page
of a window asks by time (``type=2``, ``after`` = the window end in ms): the newest
100 trades strictly before the end. Every next page asks by trade id (``type=1``,
``after`` = the oldest id seen), so the many trades sharing one millisecond are never
split by a time cursor. The window ends once a page reaches a trade older than its
start, or OKX has nothing older (an empty page: the 3-month horizon).
Docs: https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-trades-history
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import DataType, Span, Symbol, Transport
from dccd_core.transport.errors import PERMANENT, RATE_LIMIT, TRANSIENT, ErrorTable

from .. import columns
from ..base import Endpoints, HttpApi, Request, Source, TradePage
from .capability import BARS, CANDLES_LIMIT, CAPABILITY, TRADES_LIMIT
from .funding import build_funding_request, parse_funding
from .open_interest import build_open_interest_request, parse_open_interest
from .parse import check_payload, parse_book, parse_candles, parse_trades
from .prices import build_price_candles_request, parse_price_candles
from .symbols import Contract, inst_type_of, native_symbol, parse_contract, parse_symbols

__all__ = [
    "ERRORS",
    "OkxRest",
    "build_book_request",
    "build_candles_request",
    "build_symbols_request",
    "build_trades_request",
]

#: OKX v5's documented error codes (okx.com/docs-v5, "Error Code"; public 50xxx and
#: 51xxx), sent with HTTP 200, 400, 429 or 5xx alike.
ERRORS = ErrorTable.of(
    {
        "50001": TRANSIENT,  # service temporarily unavailable, please try again later (503)
        "50004": TRANSIENT,  # endpoint request timeout: outcome unknown, check and retry (400)
        "50005": PERMANENT,  # API is offline or unavailable (410)
        "50011": RATE_LIMIT,  # rate limit reached / requests too frequent (429)
        "50013": TRANSIENT,  # system is busy, please try again later
        "50014": PERMANENT,  # parameter {0} can not be empty
        "50026": TRANSIENT,  # system error, try again later (500)
        "51000": PERMANENT,  # parameter {0} error
        "51001": PERMANENT,  # instrument ID does not exist
        "51014": PERMANENT,  # index does not exist
    }
)


def build_candles_request(symbol: Symbol, span: Span, start_ts: int, end_ts: int) -> Request:
    """``history-candles`` for bars opening in ``[start_ts, end_ts)``: ``after`` is
    exclusive (bars older than ``end``) and the caller's window holds <= 100 bars."""
    CAPABILITY.require(DataType.OHLC, Transport.REST, span=span, history=False)
    params = {
        "instId": native_symbol(symbol),
        "bar": BARS[span],
        "after": str(columns.ceil_ms(end_ts)),
        "limit": str(CANDLES_LIMIT),
    }
    return Request("/api/v5/market/history-candles", params)


def build_trades_request(symbol: Symbol, end_ts: int, cursor: str | None) -> Request:
    """``history-trades``: by time before ``end_ts`` first, then by trade id before ``cursor``."""
    params = {"instId": native_symbol(symbol), "limit": str(TRADES_LIMIT)}
    if cursor is None:
        params |= {"type": "2", "after": str(columns.ceil_ms(end_ts))}
    else:
        params |= {"type": "1", "after": str(cursor)}
    return Request("/api/v5/market/history-trades", params)


def build_book_request(symbol: Symbol, depth: int) -> Request:
    """``books`` with ``sz`` = depth (<= 400)."""
    CAPABILITY.require(DataType.BOOK, Transport.REST, depth=depth, history=False)
    return Request("/api/v5/market/books", {"instId": native_symbol(symbol), "sz": str(depth)})


def build_symbols_request(inst_type: str, inst_id: str | None = None) -> Request:
    """``public/instruments`` of one type (SPOT, SWAP), optionally one instrument."""
    params = {"instType": inst_type}
    if inst_id:
        params["instId"] = inst_id
    return Request("/api/v5/public/instruments", params)


class OkxRest(Source):
    """OKX v5 over REST: spot (``BTC/USDT``) and perpetual swaps (``BTC/USDT:USDT``
    linear, ``BTC/USD:BTC`` inverse), swap sizes converted from contracts to base."""

    #: tradeId: a decimal integer per instrument, growing with time
    monotonic_trade_ids: ClassVar[bool] = True
    capability = CAPABILITY
    default_endpoints: ClassVar[Endpoints] = Endpoints(
        "https://www.okx.com", "wss://ws.okx.com:8443"
    )
    check_payload = staticmethod(check_payload)
    errors = ERRORS
    funding_wire = (build_funding_request, parse_funding)
    price_candles_wire = (build_price_candles_request, parse_price_candles)
    open_interest_wire = (build_open_interest_request, parse_open_interest)

    native_symbol = staticmethod(native_symbol)

    def __init__(self, http: HttpApi | None, endpoints: Endpoints | None = None) -> None:
        super().__init__(http, endpoints)
        self._contracts: dict[str, Contract] = {}

    async def fetch_symbols(self) -> set[Symbol] | None:
        """Live spot pairs and perpetual swaps (two requests, cached)."""
        requests = [build_symbols_request(inst_type) for inst_type in ("SPOT", "SWAP")]
        return await self._listed_in(requests, parse_symbols)

    async def contract(self, symbol: Symbol) -> Contract | None:
        """The swap's contract size (one request per symbol, cached); None for spot."""
        if inst_type_of(symbol) == "SPOT":
            return None
        inst_id = native_symbol(symbol)
        if inst_id not in self._contracts:
            data = await self._get(build_symbols_request("SWAP", inst_id))
            self._contracts[inst_id] = parse_contract(data, inst_id)
        return self._contracts[inst_id]

    async def fetch_candles(
        self, symbol: Symbol, span: Span, start_ts: int, end_ts: int
    ) -> pl.DataFrame:
        data = await self._get(build_candles_request(symbol, span, start_ts, end_ts))
        frame = parse_candles(data, swap=inst_type_of(symbol) == "SWAP")
        return frame.filter((pl.col("ts") >= start_ts) & (pl.col("ts") < end_ts))

    async def fetch_trades_page(
        self, symbol: Symbol, start_ts: int, end_ts: int, cursor: Any | None
    ) -> TradePage:
        contract = await self.contract(symbol)
        data = await self._get(build_trades_request(symbol, end_ts, cursor))
        rows = parse_trades(data, contract=contract)
        if rows.is_empty() or int(rows["ts"].min()) < start_ts:  # type: ignore[arg-type]
            return TradePage(rows, None)
        # Oldest first: row 0 is the oldest trade, its id is where the next page starts.
        oldest_id = min(rows["trade_id"].to_list(), key=_id_order)
        return TradePage(rows, oldest_id)

    async def fetch_book(self, symbol: Symbol, depth: int) -> pl.DataFrame:
        contract = await self.contract(symbol)
        data = await self._get(build_book_request(symbol, depth))
        return parse_book(data, depth, contract=contract)


def _id_order(trade_id: str) -> tuple[int, str]:
    """OKX trade ids are decimal integers; order them numerically, not as text."""
    return (int(trade_id), trade_id) if trade_id.isdigit() else (0, trade_id)
