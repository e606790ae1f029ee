"""Bybit v5 public streams: ``publicTrade``, ``kline``, ``orderbook`` and
``allLiquidation`` (derivatives only; no REST history) topics.

API: https://bybit-exchange.github.io/docs/v5/websocket/public/trade (and ``/kline``,
``/orderbook``). One connection per category: ``wss://stream.bybit.com/v5/public/spot``
(``linear``, ``inverse``); topics are subscribed with ``{"op": "subscribe", "args":
[...]}`` (at most 10 per message on spot) and kept alive with ``{"op": "ping"}`` every
20 s. Pushes are ``{"topic", "type", "ts", "data"}``.

Book protocol: the first ``orderbook.{depth}.{symbol}`` push is a ``snapshot``, then
``delta`` pushes whose update id ``u`` grows by one each; a size of "0" deletes a level;
a ``snapshot`` may come again at any time (``u`` = 1 after a service restart) and
replaces the book. A skipped ``u`` is a gap: the stream resubscribes (a new snapshot).

Trades and klines go through the same column functions as the REST parsers
(``parse.trades_frame``: ``S`` "Buy"/"Sell" is the taker side; ``parse.candles_frame``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, ClassVar

from dccd_core.domain import DataType, Span, Symbol, errors, ms_to_ns

from .. import columns, ws
from .capability import INTERVALS
from .parse import candles_frame, trades_frame
from .symbols import category_of, native_symbol

__all__ = ["BYBIT_WS", "BybitWs", "book_channel_depth", "parse_levels"]

BYBIT_WS = "wss://stream.bybit.com"
_BOOK_DEPTHS = (1, 50, 200)
_ARGS_PER_MESSAGE = 10
_SPANS_BY_INTERVAL = {v: k for k, v in INTERVALS.items()}


#: the liquidated position's side -> the side of the order that closed it
_LIQUIDATED_POSITION = {"Buy": "sell", "Sell": "buy"}


def book_channel_depth(depth: int) -> int:
    """The smallest ``orderbook.{n}`` topic holding ``depth`` levels (1, 50, 200)."""
    for n in _BOOK_DEPTHS:
        if n >= depth:
            return n
    raise errors.NoCapability(
        f"bybit streams books up to 200 levels, not {depth}; use depth <= 200"
    )


def parse_levels(raw: Any, *, inverse: bool, what: str) -> ws.BookLevels:
    """``[["16493.50", "0.006"], ...]`` to (price, base amount); "0" deletes a level."""
    levels = columns.float_levels(raw, what)
    if inverse:
        return [(p, q / p) for p, q in levels]
    return levels


class BybitWs(ws.WsSource):
    """Bybit's streaming hooks, mixed into ``BybitSource`` next to ``BybitRest``."""

    ws_ping: ClassVar[ws.WsPing | None] = ws.WsPing({"op": "ping"}, 20.0)
    ws_idle_timeout_s: ClassVar[float] = 60.0
    book_protocol: ClassVar[ws.BookProtocol] = ws.BookProtocol.resubscribing()

    _ws_inverse: bool = False

    def _ws_category(self, sub: ws.WsSubscription) -> str:
        categories = {category_of(s) for s in sub.symbols}
        if len(categories) != 1:
            raise errors.NoCapability(
                "bybit streams one category per connection (spot, linear or inverse); "
                "list spot and perpetual symbols in separate stream datasets"
            )
        return categories.pop()

    def _topic(self, symbol: Symbol, sub: ws.WsSubscription) -> str:
        native = native_symbol(symbol)
        if sub.data_type is DataType.TRADES:
            return f"publicTrade.{native}"
        if sub.data_type is DataType.OHLC:
            if sub.span is None or sub.span not in INTERVALS:
                raise errors.NoCapability(f"bybit streams no {sub.span} candles")
            return f"kline.{INTERVALS[sub.span]}.{native}"
        if sub.data_type is DataType.LIQUIDATIONS:
            return f"allLiquidation.{native}"
        return f"orderbook.{book_channel_depth(sub.book_depth)}.{native}"

    def ws_url(self, sub: ws.WsSubscription) -> str:
        """``wss://stream.bybit.com/v5/public/{category}``."""
        category = self._ws_category(sub)
        self._subscribe(sub, native_symbol)
        self._ws_inverse = category == "inverse"
        return f"{self._ws_origin(BYBIT_WS)}/v5/public/{category}"

    def ws_subscribe_messages(self, sub: ws.WsSubscription) -> list[str | bytes | dict[str, Any]]:
        """``{"op": "subscribe", "args": [topics]}``, 10 topics per message."""
        topics = [self._topic(s, sub) for s in sub.symbols]
        return [
            {"op": "subscribe", "args": topics[i : i + _ARGS_PER_MESSAGE]}
            for i in range(0, len(topics), _ARGS_PER_MESSAGE)
        ]

    def parse_ws_frame(self, raw: str | bytes) -> Sequence[ws.WsEvent | ws.WsRecords]:
        """One push to events, trades and klines as records to build per batch.

        Samples::

            {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868,
             "data": [{"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001",
                       "p": "16578.50", "L": "PlusTick", "i": "20f43950-d8dd", "BT": false}]}
            {"topic": "kline.5.BTCUSDT", "type": "snapshot", "ts": 1672324988882,
             "data": [{"start": 1672324800000, "end": 1672325099999, "interval": "5",
                       "open": "16649.5", "close": "16677", "high": "16677", "low": "16608",
                       "volume": "2.081", "turnover": "34666.4005", "confirm": false,
                       "timestamp": 1672324988882}]}
            {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1687940967466,
             "data": {"s": "BTCUSDT", "b": [["30247.20", "30.028"]], "a": [], "u": 177400507,
                      "seq": 66544703342}, "cts": 1687940967464}
            {"success": true, "ret_msg": "pong", "conn_id": "...", "op": "ping"}
        """
        msg = ws.decode_frame(raw, "bybit stream")
        if not isinstance(msg, dict):
            raise errors.UnexpectedPayload(f"bybit stream: unknown frame {msg!r:.200}")
        topic = msg.get("topic")
        if not isinstance(topic, str):
            return [self._control(msg)]
        kind, _, rest = topic.partition(".")
        data = msg.get("data")
        if kind == "publicTrade":
            self._ws_symbol(rest)
            if not isinstance(data, list):
                raise errors.UnexpectedPayload(
                    f"bybit publicTrade: expected a data list, got {data!r:.200}"
                )
            return [ws.WsRecords(("trades", rest), data, partial(self._trades, rest))]
        if kind == "kline":
            interval, _, native = rest.partition(".")
            self._ws_symbol(native)
            if not isinstance(data, list):
                raise errors.UnexpectedPayload(
                    f"bybit kline: unexpected interval {interval!r} or data"
                )
            build = partial(self._klines, interval, native)
            return [ws.WsRecords(("kline", interval, native), data, build)]
        if kind == "orderbook":
            return [self._book(msg, data)]
        if kind == "allLiquidation":
            self._ws_symbol(rest)
            rows = columns.json_list(data, topic)
            liquidations = partial(self._liquidations, rest)
            return [ws.WsRecords(("liquidations", rest), rows, liquidations)]
        raise errors.UnexpectedPayload(f"bybit stream: unknown topic {topic!r}")

    def _control(self, msg: dict[str, Any]) -> ws.WsEvent:
        if msg.get("success") is False:
            raise errors.ExchangeError(
                f"bybit stream refused {msg.get('op')}: {msg.get('ret_msg')}; "
                "check the symbols and spans of the stream"
            )
        if "op" in msg or "success" in msg:
            return ws.WsIgnore(str(msg.get("ret_msg") or msg.get("op")))
        raise errors.UnexpectedPayload(f"bybit stream: unknown frame {msg!r:.200}")

    def _trades(self, native: str, data: Any) -> ws.WsTrades:
        what = "bybit publicTrade"
        if not isinstance(data, list):
            raise errors.UnexpectedPayload(f"{what}: expected a data list, got {data!r:.200}")
        cols = columns.object_columns(data, ("T", "i", "p", "v", "S"), what)
        rows = trades_frame(*cols, inverse=self._ws_inverse, what=what)
        return ws.WsTrades(self._ws_symbol(native), rows)

    def _klines(self, interval: str, native: str, data: Any) -> ws.WsCandles:
        what = "bybit kline"
        span = _SPANS_BY_INTERVAL.get(interval)
        if span is None or not isinstance(data, list):
            raise errors.UnexpectedPayload(f"{what}: unexpected interval {interval!r} or data")
        keys = ("start", "open", "high", "low", "close", "volume", "turnover", "confirm")
        *cols, closed = columns.object_columns(data, keys, what, "kline")
        if not all(isinstance(c, bool) for c in closed):
            raise errors.UnexpectedPayload(f"{what}: confirm must be true/false, got {closed}")
        frame = candles_frame(*cols, inverse=self._ws_inverse, what=what, closed=closed)
        return ws.WsCandles(self._ws_symbol(native), Span.parse(span), frame)

    def _liquidations(self, native: str, data: list[Any]) -> ws.WsLiquidations:
        """``allLiquidation`` rows; Bybit's ``S`` is the liquidated *position*'s side
        (``Buy``: a long was liquidated), so the liquidation order's side is the other
        one (the side dccd stores, as Binance's ``forceOrder`` sends it). Inverse sizes
        are contracts of 1 USD, converted to base as for trades. No order id is sent.

        Sample (https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation)::

            {"topic": "allLiquidation.ROSEUSDT", "type": "snapshot", "ts": 1739502303204,
             "data": [{"T": 1739502302929, "s": "ROSEUSDT", "S": "Sell", "v": "20000",
                       "p": "0.04499"}]}
        """
        what = "bybit allLiquidation"
        ts, sides, prices, sizes = columns.object_columns(data, ("T", "S", "p", "v"), what)
        price = columns.float_column("price", prices, what)
        amount = columns.float_column("amount", sizes, what)
        rows = columns.to_schema(
            DataType.LIQUIDATIONS,
            {
                "ts": columns.ms_to_ns_column("ts", ts, what),
                "side": columns.side_column(sides, _LIQUIDATED_POSITION, what),
                "price": price,
                "amount": amount / price if self._ws_inverse else amount,
            },
        ).sort("ts", maintain_order=True)
        return ws.WsLiquidations(self._ws_symbol(native), rows)

    def _book(self, msg: dict[str, Any], data: Any) -> ws.WsBook:
        what = "bybit orderbook"
        kind = msg.get("type")
        if kind not in ("snapshot", "delta") or not isinstance(data, dict):
            raise errors.UnexpectedPayload(f"{what}: unexpected push {msg!r:.200}")
        try:
            seq = int(data["u"])
            return ws.WsBook(
                symbol=self._ws_symbol(str(data["s"])),
                ts=ms_to_ns(msg.get("cts") or msg["ts"]),
                snapshot=kind == "snapshot",
                bids=parse_levels(data["b"], inverse=self._ws_inverse, what=what),
                asks=parse_levels(data["a"], inverse=self._ws_inverse, what=what),
                first_seq=seq,
                last_seq=seq,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.UnexpectedPayload(f"{what}: bad field {exc} in {data!r:.200}") from None
