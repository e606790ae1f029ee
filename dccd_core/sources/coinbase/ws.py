"""Coinbase Exchange WebSocket feed: ``matches`` (trades) and ``level2_batch`` (book).

Docs: https://docs.cdp.coinbase.com/exchange/websocket-feed/channels
One connection to ``wss://ws-feed.exchange.coinbase.com``; a ``subscribe`` frame names
the products and channels. ``heartbeat`` is subscribed too so a silent connection is
noticed (one frame a second per product). Match frames carry the same keys as the REST
trades, so both paths go through ``parse.parse_trades`` (maker side -> taker side once).
``level2_batch`` sends a ``snapshot`` then ``l2update`` changes with no sequence ids or
checksum: a crossed book is the only evidence of a missed update, and it is healed by
resubscribing. There is no candle channel (``ticker`` is a last-trade feed, not bars).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from dccd_core.domain import DataType, errors, now_ns

from .. import columns, ws
from .capability import WS_URL
from .parse import parse_trades
from .symbols import native_symbol, unified_symbol

__all__ = ["CHANNELS", "CoinbaseWs", "parse_ws_frame"]

#: Our data type -> Coinbase channel.
CHANNELS: dict[DataType, str] = {DataType.TRADES: "matches", DataType.BOOK: "level2_batch"}
_IGNORED = {"subscriptions", "heartbeat", "ticker", "status"}


def _ts(frame: dict[str, Any], what: str) -> int:
    raw = frame.get("time")
    if raw is None:
        return now_ns()
    return int(columns.iso_to_ns_column("ts", [raw], what)[0])


def _book_event(frame: dict[str, Any]) -> ws.WsBook:
    """``snapshot``/``l2update`` -> ``WsBook``.

    Samples::

        {"type": "snapshot", "product_id": "BTC-USD",
         "bids": [["10101.10", "0.45054140"]], "asks": [["10102.55", "0.57753524"]]}
        {"type": "l2update", "product_id": "BTC-USD", "time": "2019-08-14T20:42:27.265Z",
         "changes": [["buy", "10101.80000000", "0.162567"]]}
    """
    what = "coinbase level2"
    symbol = unified_symbol(frame["product_id"])
    if frame["type"] == "snapshot":
        return ws.WsBook(
            symbol=symbol,
            ts=_ts(frame, what),
            snapshot=True,
            bids=columns.float_levels(frame.get("bids", []), what),
            asks=columns.float_levels(frame.get("asks", []), what),
        )
    changes = frame.get("changes")
    if not isinstance(changes, list):
        raise errors.UnexpectedPayload(f"{what}: l2update without changes: {frame!r}")
    bids: list[Any] = []
    asks: list[Any] = []
    for change in changes:
        if not isinstance(change, list) or len(change) < 3 or change[0] not in ("buy", "sell"):
            raise errors.UnexpectedPayload(f"{what}: bad change {change!r}")
        (bids if change[0] == "buy" else asks).append(change[1:3])
    return ws.WsBook(
        symbol=symbol,
        ts=_ts(frame, what),
        snapshot=False,
        bids=columns.float_levels(bids, what),
        asks=columns.float_levels(asks, what),
    )


def _matches_of(product: str) -> Callable[[list[Any]], ws.WsEvent]:
    def build(frames: list[Any]) -> ws.WsEvent:
        return ws.WsTrades(unified_symbol(product), parse_trades(frames))

    return build


def parse_ws_frame(raw: str | bytes) -> list[ws.WsEvent | ws.WsRecords]:
    """One frame -> events; a match is a record, so the matches of a batch become one
    frame per product (one vectorised ``parse_trades`` call), placed where its first
    match was (``CoinbaseWs.ws_records_in_place``).

    Match sample (``side`` is the maker's)::

        {"type": "match", "trade_id": 10, "sequence": 50, "maker_order_id": "ac92...",
         "taker_order_id": "d50e...", "time": "2014-11-07T08:19:27.028459Z",
         "product_id": "BTC-USD", "size": "5.23512", "price": "400.23", "side": "sell"}
    """
    frame = ws.decode_frame(raw, "coinbase ws", 80)
    if not isinstance(frame, dict) or "type" not in frame:
        raise errors.UnexpectedPayload(f"coinbase ws: unexpected frame {str(raw)[:120]}")
    kind = frame["type"]
    if kind in ("match", "last_match"):
        product = str(frame.get("product_id"))
        return [ws.WsRecords(("matches", product), [frame], _matches_of(product))]
    if kind in ("snapshot", "l2update"):
        return [_book_event(frame)]
    if kind == "error":
        raise errors.ExchangeError(
            f"coinbase ws error: {frame.get('message')} ({frame.get('reason', '')})"
        )
    if kind in _IGNORED:
        return [ws.WsIgnore(kind)]
    raise errors.UnexpectedPayload(f"coinbase ws: unknown frame type {kind!r}")


class CoinbaseWs(ws.WsSource):
    """The ``WsSource`` hooks of Coinbase (mixed into ``CoinbaseSource``)."""

    #: Trade ids are consecutive per product (REST pages and ``matches`` alike), so a
    #: missed match is an id jump the stream heals from REST.
    ws_sequential_trade_ids: ClassVar[bool] = True
    ws_idle_timeout_s: ClassVar[float] = 30.0
    book_protocol: ClassVar[ws.BookProtocol] = ws.BookProtocol.resubscribing()
    ws_records_in_place: ClassVar[bool] = True

    def ws_url(self, sub: ws.WsSubscription) -> str:
        if sub.data_type not in CHANNELS:
            raise errors.NoCapability(
                f"coinbase streams trades and book only, not {sub.data_type} "
                "(its ticker channel is not candles); backfill ohlc over REST instead"
            )
        return self._ws_origin(WS_URL)

    def ws_subscribe_messages(self, sub: ws.WsSubscription) -> list[str | bytes | dict[str, Any]]:
        products = [native_symbol(s) for s in sub.symbols]
        return [
            {
                "type": "subscribe",
                "product_ids": products,
                "channels": [CHANNELS[sub.data_type], "heartbeat"],
            }
        ]

    def parse_ws_frame(self, raw: str | bytes) -> list[ws.WsEvent | ws.WsRecords]:
        return parse_ws_frame(raw)
