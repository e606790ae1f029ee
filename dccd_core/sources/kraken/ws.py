"""Kraken WebSocket v2: ``trade``, ``ohlc`` and ``book`` (with its CRC32 checksum).

Docs: https://docs.kraken.com/api/docs/websocket-v2/book
One connection to ``wss://ws.kraken.com/v2``; a ``subscribe`` frame per channel. Frames
are decoded with floats kept as their texts: the book checksum is computed over the
exact digits Kraken sent (``0.00100000`` is not ``0.001``). Trades go through the REST
parser's ``taker_side`` (``buy``/``sell`` here, ``b``/``s`` over REST). The server sends
``{"channel": "heartbeat"}`` about once a second, so silence means a dead connection.

An ``ohlc`` update describes the *open* bar; a bar is known to be closed once an update
for a later bar arrives (or it is an older row of a snapshot). ``parse_ws_message``
therefore remembers the last open bar per (symbol, interval): the only state kept here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import DataType, Span, Symbol, errors, now_ns

from .. import columns, ws
from .capability import SPANS, WS_BOOK_DEPTHS, WS_URL
from .checksum import CHECKSUM_DEPTH, book_checksum
from .parse import taker_side
from .symbols import unified_symbol, ws_symbol

__all__ = [
    "CHANNELS",
    "KrakenWs",
    "decode_frame",
    "parse_ws_book",
    "parse_ws_candles",
    "parse_ws_trades",
]

CHANNELS: dict[DataType, str] = {
    DataType.TRADES: "trade",
    DataType.OHLC: "ohlc",
    DataType.BOOK: "book",
}
_IGNORED_CHANNELS = {"heartbeat", "status", "pong"}


def decode_frame(raw: str | bytes) -> Any:
    """JSON with every float kept as its text (the checksum needs Kraken's digits), so
    not ``ws.decode_frame`` (orjson would round them)."""
    try:
        return json.loads(raw, parse_float=str)
    except (ValueError, TypeError) as exc:
        raise errors.UnexpectedPayload(f"kraken ws: invalid JSON {raw[:80]!r}") from exc


def _entries(data: Any, keys: tuple[str, ...], what: str) -> dict[str, list[Any]]:
    if not isinstance(data, list):
        raise errors.UnexpectedPayload(f"{what}: data must be a list")
    try:
        return {key: [entry[key] for entry in data] for key in keys}
    except (KeyError, TypeError) as exc:
        raise errors.UnexpectedPayload(f"{what}: an entry lacks {exc}") from exc


def parse_ws_trades(data: Any) -> list[ws.WsTrades]:
    """``trade`` data -> one ``WsTrades`` per symbol. Sample::

        {"channel": "trade", "type": "update", "data": [{"symbol": "BTC/USD",
         "side": "sell", "price": 26858.3, "qty": 0.00020156, "ord_type": "market",
         "trade_id": 63624731, "timestamp": "2023-09-25T07:49:37.708706Z"}]}
    """
    what = "kraken ws trade"
    cols = _entries(data, ("symbol", "side", "price", "qty", "trade_id", "timestamp"), what)
    frame = columns.to_schema(
        DataType.TRADES,
        {
            "ts": columns.iso_to_ns_column("ts", cols["timestamp"], what),
            "trade_id": columns.int_column("trade_id", cols["trade_id"], what).cast(pl.String),
            "price": columns.float_column("price", cols["price"], what),
            "amount": columns.float_column("amount", cols["qty"], what),
            "side": taker_side(cols["side"], what),
        },
    ).with_columns(_symbol=pl.Series(cols["symbol"], dtype=pl.String))
    out = []
    for (name,), rows in frame.group_by("_symbol", maintain_order=True):
        out.append(ws.WsTrades(unified_symbol(str(name)), rows.drop("_symbol")))
    return out


def parse_ws_candles(data: Any) -> list[tuple[Symbol, Span, pl.DataFrame]]:
    """``ohlc`` data -> (symbol, span, ohlc rows + ``closed`` = False), per symbol. Sample::

        {"channel": "ohlc", "type": "update", "data": [{"symbol": "BTC/USD",
         "open": 27562.0, "high": 27567.9, "low": 27562.0, "close": 27567.9,
         "trades": 5, "volume": 0.20530839, "vwap": 27564.4,
         "interval_begin": "2023-10-04T16:25:00.000000000Z", "interval": 5,
         "timestamp": "2023-10-04T16:26:30.123Z"}]}
    """
    what = "kraken ws ohlc"
    keys = ("symbol", "open", "high", "low", "close", "trades", "volume", "vwap",
            "interval_begin", "interval")
    cols = _entries(data, keys, what)
    volume = columns.float_column("volume", cols["volume"], what)
    frame = columns.ohlc_frame(
        columns.iso_to_ns_column("ts", cols["interval_begin"], what),
        (cols["open"], cols["high"], cols["low"], cols["close"]),
        what,
        volume=volume,
        quote_volume=columns.float_column("vwap", cols["vwap"], what) * volume,
        trades=columns.int_column("trades", cols["trades"], what),
    ).with_columns(
        closed=pl.lit(False),
        _symbol=pl.Series(cols["symbol"], dtype=pl.String),
        _interval=columns.int_column("interval", cols["interval"], what),
    )
    out = []
    for (name, minutes), rows in frame.group_by("_symbol", "_interval", maintain_order=True):
        span = Span.parse(int(minutes) * 60)
        out.append((unified_symbol(str(name)), span, rows.drop("_symbol", "_interval")))
    return out


def _levels(levels: Any, what: str) -> tuple[list[tuple[float, float]], list[tuple[str, str]]]:
    if not isinstance(levels, list):
        raise errors.UnexpectedPayload(f"{what}: levels must be a list")
    try:
        rows = [[level["price"], level["qty"]] for level in levels]
    except (KeyError, TypeError) as exc:
        raise errors.UnexpectedPayload(f"{what}: bad level in {levels[:3]!r}") from exc
    texts = columns.level_texts(rows, what)
    return columns.float_levels(texts, what), texts


def parse_ws_book(frame: dict[str, Any]) -> list[ws.WsBook]:
    """``book`` snapshot/update -> ``WsBook`` with the checksum and the raw texts. Sample::

        {"channel": "book", "type": "update", "data": [{"symbol": "BTC/USD",
         "bids": [{"price": 45283.5, "qty": 0.10000000}], "asks": [],
         "checksum": 3310070434, "timestamp": "2023-10-06T17:35:55.440295Z"}]}
    """
    what = "kraken ws book"
    snapshot = frame.get("type") == "snapshot"
    out = []
    for entry in frame.get("data") or []:
        try:
            bids, bid_texts = _levels(entry.get("bids", []), what)
            asks, ask_texts = _levels(entry.get("asks", []), what)
            checksum = entry.get("checksum")
            stamp = entry.get("timestamp")
            ts = int(columns.iso_to_ns_column("ts", [stamp], what)[0]) if stamp else None
            symbol = unified_symbol(entry["symbol"])
        except (AttributeError, KeyError) as exc:
            raise errors.UnexpectedPayload(f"{what}: unexpected entry {entry!r}") from exc
        if ts is None:
            ts = now_ns()
        out.append(
            ws.WsBook(
                symbol=symbol,
                ts=ts,
                snapshot=snapshot,
                bids=bids,
                asks=asks,
                checksum=int(checksum) if checksum is not None else None,
                bid_texts=bid_texts,
                ask_texts=ask_texts,
            )
        )
    return out


class KrakenWs(ws.WsSource):
    """The ``WsSource`` hooks of Kraken v2 (mixed into ``KrakenSource``)."""

    #: v2 trade ids are sequential per pair (docs: "Trade ID: Sequential int").
    ws_sequential_trade_ids: ClassVar[bool] = True
    ws_idle_timeout_s: ClassVar[float] = 30.0
    #: No delete is sent for a level pushed out of the subscribed depth: truncate.
    book_protocol: ClassVar[ws.BookProtocol] = ws.BookProtocol.checksummed(
        CHECKSUM_DEPTH, truncate_to_depth=True
    )

    def ws_url(self, sub: ws.WsSubscription) -> str:
        if sub.data_type not in CHANNELS:
            raise errors.NoCapability(f"kraken does not stream {sub.data_type}")
        return f"{self._ws_origin(WS_URL)}/v2"

    def ws_subscribe_messages(self, sub: ws.WsSubscription) -> list[str | bytes | dict[str, Any]]:
        params: dict[str, Any] = {
            "channel": CHANNELS[sub.data_type],
            "symbol": [ws_symbol(s) for s in sub.symbols],
        }
        if sub.data_type is DataType.OHLC:
            if sub.span is None or sub.span not in SPANS:
                labels = " ".join(s.label for s in SPANS)
                raise errors.NoCapability(
                    f"kraken streams candles of {labels} only, not {sub.span}"
                )
            params["interval"] = sub.span.seconds // 60
        elif sub.data_type is DataType.BOOK:
            if sub.book_depth not in WS_BOOK_DEPTHS:
                depths = ", ".join(map(str, WS_BOOK_DEPTHS))
                raise errors.NoCapability(
                    f"kraken has no book depth {sub.book_depth} over WS: its depths are {depths}"
                )
            params["depth"] = sub.book_depth
        else:
            params["snapshot"] = False
        return [{"method": "subscribe", "params": params}]

    def book_checksum(
        self, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]
    ) -> int:
        return book_checksum(bids, asks)

    def parse_ws_frame(self, raw: str | bytes) -> Sequence[ws.WsEvent | ws.WsRecords]:
        """One frame to events, trades as records to build per batch."""
        frame = decode_frame(raw)
        if not isinstance(frame, dict):
            raise errors.UnexpectedPayload(f"kraken ws: unexpected frame {str(raw)[:120]}")
        channel = frame.get("channel")
        if channel is None:
            return [self._method_reply(frame)]
        if channel in _IGNORED_CHANNELS:
            return [ws.WsIgnore(str(channel))]
        if channel == "trade":
            data = frame.get("data")
            if not isinstance(data, list):
                raise errors.UnexpectedPayload("kraken ws trade: data must be a list")
            return [ws.WsRecords("trade", data, parse_ws_trades)]
        if channel == "book":
            return list(parse_ws_book(frame))
        if channel == "ohlc":
            return self._close_candles(parse_ws_candles(frame.get("data")),
                                       snapshot=frame.get("type") == "snapshot")
        raise errors.UnexpectedPayload(f"kraken ws: unknown channel {channel!r}")

    def _method_reply(self, frame: dict[str, Any]) -> ws.WsEvent:
        """``{"method": "subscribe", "success": false, "error": "..."}`` -> ExchangeError."""
        if frame.get("success") is False:
            raise errors.ExchangeError(
                f"kraken ws refused {frame.get('method')}: {frame.get('error')}"
            )
        if "method" in frame:
            return ws.WsIgnore(str(frame["method"]))
        raise errors.UnexpectedPayload(f"kraken ws: unexpected frame {str(frame)[:120]}")

    @cached_property
    def _open_bars(self) -> dict[tuple[Symbol, Span], pl.DataFrame]:
        """The still-open bar per (symbol, span): the only state kept (module docstring)."""
        return {}

    def _close_candles(
        self, groups: list[tuple[Symbol, Span, pl.DataFrame]], *, snapshot: bool
    ) -> list[ws.WsEvent]:
        """Mark bars closed once a later bar shows up (see the module docstring)."""
        held = self._open_bars
        events: list[ws.WsEvent] = []
        for symbol, span, rows in groups:
            previous = held.get((symbol, span))
            frames = [rows] if previous is None else [previous, rows]
            merged = pl.concat(frames).unique("ts", keep="last", maintain_order=True).sort("ts")
            newest = merged.get_column("ts").max()
            merged = merged.with_columns(closed=pl.col("ts") < newest)
            held[(symbol, span)] = merged.filter(~pl.col("closed"))
            if not snapshot and previous is not None:
                # only bars this frame closed, plus the open one as a progress report
                merged = merged.filter(pl.col("ts") >= previous.get_column("ts").min())
            events.append(ws.WsCandles(symbol, span, merged))
        return events
