"""OKX v5 public streams: ``trades-all``, ``candle{bar}``, ``books`` and
``liquidation-orders`` (swaps; see ``liquidations.py``) channels.

API: https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-all-trades-channel
(and the candlesticks and order book channels). Trades and candles live on
``wss://ws.okx.com:8443/ws/v5/business``, books on ``/ws/v5/public``; channels are
subscribed with ``{"op": "subscribe", "args": [{"channel", "instId"}]}`` and the
connection is kept alive with a text ``ping`` (answered ``pong``) every 20 s, since
OKX closes a connection after 30 s without traffic.

Why ``trades-all`` and not ``trades``: ``trades`` aggregates the fills of one taker
order into one push (``tradeId`` = the last id, ``sz`` = the sum, plus ``count``), so its
rows would clash on the natural key with the single trades REST ``history-trades``
returns. ``trades-all`` pushes every trade, exactly as REST lists them.

Book protocol: ``action`` "snapshot" (400 levels) then "update" pushes chained by
``prevSeqId`` == the previous ``seqId``; an update with no change repeats the
``seqId``. Each push carries ``checksum``: the signed CRC32 of the top 25 levels
interleaved ``bidPx:bidSz:askPx:askSz:...`` as the exchange's own texts; a mismatch or
a broken chain resubscribes. Swap sizes are contracts: amounts are converted to base
with the contract size, fetched once by :meth:`OkxWs.prepare_ws` before connecting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from dccd_core.domain import DataType, Span, Symbol, errors, ms_to_ns

from .. import columns, ws
from ..book_checksum import interleaved_checksum
from .capability import BARS
from .liquidations import CHANNEL as LIQUIDATIONS_CHANNEL
from .liquidations import parse_liquidation_orders
from .parse import candles_frame, trades_frame
from .symbols import Contract, inst_type_of, native_symbol

__all__ = ["CHECKSUM_DEPTH", "OKX_WS", "OkxWs", "parse_levels"]

OKX_WS = "wss://ws.okx.com:8443"
CHECKSUM_DEPTH = 25
_SPANS_BY_CHANNEL = {f"candle{bar}": span for span, bar in BARS.items()}


def parse_levels(
    raw: Any, contract: Contract | None, what: str
) -> tuple[list[tuple[float, float]], list[tuple[str, str]]]:
    """``[["8476.98", "415", "0", "13"], ...]`` to (price, base amount) and raw texts."""
    texts = columns.level_texts(raw, what)
    levels = columns.float_levels(texts, what)
    if contract is not None:
        levels = [(p, float(contract.base_amount(q, p))) for p, q in levels]
    return levels, texts


class OkxWs(ws.WsSource):
    """OKX's streaming hooks, mixed into ``OkxSource`` next to ``OkxRest``."""

    ws_ping: ClassVar[ws.WsPing | None] = ws.WsPing("ping", 20.0)
    ws_idle_timeout_s: ClassVar[float] = 40.0
    book_protocol: ClassVar[ws.BookProtocol] = ws.BookProtocol.checksummed(CHECKSUM_DEPTH)

    #: the swap contract sizes of the subscription (by instId), set by ``prepare_ws``
    _ws_contracts: Mapping[str, Contract | None] = MappingProxyType({})

    if TYPE_CHECKING:  # declared for the checker only: a body here would shadow OkxRest's

        async def contract(self, symbol: Symbol) -> Contract | None:
            """A swap's contract size, cached: ``OkxRest.contract`` (the REST half)."""

    async def prepare_ws(self, sub: ws.WsSubscription) -> None:
        """Fetch the contract size of every swap in ``sub`` (parsers are synchronous)."""
        contracts: dict[str, Contract | None] = {}
        for symbol in sub.symbols:
            contracts[native_symbol(symbol)] = await self.contract(symbol)
        self._ws_contracts = contracts

    def _channel(self, sub: ws.WsSubscription) -> str:
        if sub.data_type is DataType.TRADES:
            return "trades-all"
        if sub.data_type is DataType.OHLC:
            if sub.span is None or sub.span not in BARS:
                raise errors.NoCapability(f"okx streams no {sub.span} candles")
            return f"candle{BARS[sub.span]}"
        if sub.data_type is DataType.LIQUIDATIONS:
            return LIQUIDATIONS_CHANNEL
        if sub.book_depth > 400:
            raise errors.NoCapability(f"okx streams books up to 400 levels, not {sub.book_depth}")
        return "books"

    def ws_url(self, sub: ws.WsSubscription) -> str:
        """``.../ws/v5/business`` for trades and candles, ``.../ws/v5/public`` for books
        and liquidations."""
        missing = [
            str(s)
            for s in sub.symbols
            if inst_type_of(s) == "SWAP" and native_symbol(s) not in self._ws_contracts
        ]
        if missing:
            raise errors.NoCapability(
                f"okx swap streams ({', '.join(missing)}) need contract sizes: "
                "await source.prepare_ws(sub) before connecting (operations.stream does)"
            )
        self._subscribe(sub, native_symbol)
        public = sub.data_type in (DataType.BOOK, DataType.LIQUIDATIONS)
        path = "public" if public else "business"
        return f"{self._ws_origin(OKX_WS)}/ws/v5/{path}"

    def ws_subscribe_messages(self, sub: ws.WsSubscription) -> list[str | bytes | dict[str, Any]]:
        """One ``subscribe`` with a ``{channel, instId}`` argument per symbol; liquidations
        are subscribed per instrument type (``{channel, instType: SWAP}``, once)."""
        channel = self._channel(sub)
        if channel == LIQUIDATIONS_CHANNEL:
            return [{"op": "subscribe", "args": [{"channel": channel, "instType": "SWAP"}]}]
        args = [{"channel": channel, "instId": native_symbol(s)} for s in sub.symbols]
        return [{"op": "subscribe", "args": args}]

    def _symbol(self, inst_id: object) -> tuple[Symbol, Contract | None]:
        symbol = self._ws_symbol(inst_id, "instrument")
        return symbol, self._ws_contracts.get(str(inst_id))

    def parse_ws_frame(self, raw: str | bytes) -> Sequence[ws.WsEvent | ws.WsRecords]:
        """One push to events, trades and candles as records to build per batch.

        Samples::

            {"arg": {"channel": "trades-all", "instId": "BTC-USDT"}, "data": [{"instId":
              "BTC-USDT", "tradeId": "130639474", "px": "42219.9", "sz": "0.12060306",
              "side": "buy", "ts": "1630048897897"}]}
            {"arg": {"channel": "candle1D", "instId": "BTC-USDT"}, "data": [["1597026383085",
              "8533.02", "8553.74", "8527.17", "8548.26", "45247", "529.5858061",
              "5.3", "0"]]}
            {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update", "data": [
              {"asks": [["8476.98", "415", "0", "13"]], "bids": [], "ts": "1597026383085",
               "checksum": -855196043, "prevSeqId": 123456, "seqId": 123457}]}
            {"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"},
             "connId": "a4d3ae55"}
            pong
        """
        if raw in ("pong", b"pong"):
            return [ws.WsIgnore("pong")]
        msg = ws.decode_frame(raw, "okx stream")
        if not isinstance(msg, dict):
            raise errors.UnexpectedPayload(f"okx stream: unknown frame {msg!r:.200}")
        if "event" in msg:
            return [self._event(msg)]
        arg, data = msg.get("arg"), msg.get("data")
        if not isinstance(arg, dict) or not isinstance(data, list):
            raise errors.UnexpectedPayload(f"okx stream: unknown frame {msg!r:.200}")
        channel = str(arg.get("channel", ""))
        if channel == LIQUIDATIONS_CHANNEL:  # every swap's: only the subscribed ones kept
            return [ws.WsRecords(channel, data, self._liquidations)]
        symbol, contract = self._symbol(arg.get("instId"))
        if channel == "trades-all" or channel == "trades":

            def trades(records: list[Any]) -> ws.WsEvent:
                rows = trades_frame(records, contract=contract, what=f"okx {channel}")
                return ws.WsTrades(symbol, rows)

            return [ws.WsRecords((channel, symbol), data, trades)]
        if channel in _SPANS_BY_CHANNEL:
            span = Span.parse(_SPANS_BY_CHANNEL[channel])

            def candles(records: list[Any]) -> ws.WsEvent:
                frame = candles_frame(records, swap=contract is not None, what=f"okx {channel}")
                return ws.WsCandles(symbol, span, frame)

            return [ws.WsRecords((channel, symbol), data, candles)]
        if channel == "books":
            return [self._book(symbol, contract, msg.get("action"), item) for item in data]
        raise errors.UnexpectedPayload(f"okx stream: unknown channel {channel!r}")

    def _liquidations(self, items: list[Any]) -> list[ws.WsEvent]:
        """The subscribed swaps' liquidations of a batch of pushes, one event each."""
        contracts = {native: self._ws_contracts.get(native) for native in self._ws_symbols}
        frames = parse_liquidation_orders(items, contracts)
        return [ws.WsLiquidations(self._ws_symbol(n), rows) for n, rows in frames.items()]

    def _event(self, msg: dict[str, Any]) -> ws.WsEvent:
        if msg.get("event") == "error":
            raise errors.ExchangeError(
                f"okx stream error {msg.get('code')}: {msg.get('msg')}; "
                "check the instruments and channels of the stream"
            )
        return ws.WsIgnore(str(msg.get("event")))

    def _book(self, symbol: Symbol, contract: Contract | None, action: Any, item: Any) -> ws.WsBook:
        what = "okx books"
        if action not in ("snapshot", "update") or not isinstance(item, dict):
            raise errors.UnexpectedPayload(f"{what}: unexpected action {action!r} or data")
        try:
            bids, bid_texts = parse_levels(item["bids"], contract, what)
            asks, ask_texts = parse_levels(item["asks"], contract, what)
            return ws.WsBook(
                symbol=symbol,
                ts=ms_to_ns(item["ts"]),
                snapshot=action == "snapshot",
                bids=bids,
                asks=asks,
                last_seq=int(item["seqId"]),
                prev_seq=int(item["prevSeqId"]),
                checksum=int(item["checksum"]),
                bid_texts=bid_texts,
                ask_texts=ask_texts,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.UnexpectedPayload(f"{what}: bad field {exc} in {item!r:.200}") from None

    def check_book_sequence(
        self, prev_last_seq: int | None, update: ws.WsBook, *, first: bool = False
    ) -> ws.SeqCheck:
        """OKX chains by ``prevSeqId``: it must equal the last applied ``seqId`` (a
        no-change push repeats it). ``seqId`` may even restart lower after maintenance,
        so only the chain is trusted, never the ordering of ids."""
        if prev_last_seq is None or update.prev_seq is None:
            return ws.SeqCheck.APPLY
        return ws.SeqCheck.APPLY if update.prev_seq == prev_last_seq else ws.SeqCheck.GAP

    def book_checksum(
        self, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]
    ) -> int:
        return interleaved_checksum(bids, asks, CHECKSUM_DEPTH)
