"""Bitfinex WebSocket v2 hooks: trades, candles and the checksummed book.

Docs: https://docs.bitfinex.com/docs/ws-general , https://docs.bitfinex.com/reference/
ws-public-trades , .../ws-public-candles , .../ws-public-books . One connection to
``wss://api-pub.bitfinex.com/ws/2`` carries every symbol (at most 25 channels). After
connecting we send ``{"event": "conf", "flags": 131072}`` (OB_CHECKSUM) and one
``subscribe`` per symbol; the server answers ``{"event": "subscribed", "chanId": 17,
...}`` and from then on frames are arrays addressed by ``chanId``:

* ``[17, "hb"]`` every 15 s of silence (heartbeat);
* trades: ``[17, [[ID, MTS, AMOUNT, PRICE], ...]]`` snapshot, ``[17, "te", [...]]``
  executed, ``[17, "tu", [...]]`` the same trade again once its id is final (ignored:
  ``te`` already carries the id);
* candles: ``[17, [[MTS, O, C, H, L, V], ...]]`` snapshot (newest first) and
  ``[17, [MTS, O, C, H, L, V]]`` updates of the running bar; Bitfinex never says a bar
  is closed, so a bar is closed when a newer one starts;
* book (P0): ``[17, [[PRICE, COUNT, AMOUNT], ...]]`` snapshot, ``[17, [PRICE, COUNT,
  AMOUNT]]`` updates (COUNT 0 deletes; AMOUNT > 0 bid, < 0 ask) and ``[17, "cs", CRC]``,
  the CRC32 of the top 25 levels after the updates. A mismatch means a lost update:
  the book is rebuilt by resubscribing (reconnecting).

The channel map (``chanId`` -> what it carries) is the one piece of connection state a
frame cannot carry; it is rebuilt from the ``subscribed`` events of each connection.
Trade rows go through ``parse.parse_trades``, the REST parser: one side mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

from dccd_core.domain import DataType, Span, Symbol, errors, now_ns

from .. import features, ws
from ..book_checksum import interleaved_checksum
from .capability import CANDLE_TIMEFRAMES, WS_URL
from .parse import parse_candles, parse_trades
from .symbols import from_native, to_native

__all__ = ["OB_CHECKSUM", "BitfinexWs", "js_number_text"]

OB_CHECKSUM = 131_072
_MAX_CHANNELS = 25
_CHECKSUM_DEPTH = 25
_BOOK_LENGTHS = (1, 25, 100, 250)


def js_number_text(value: float | int) -> str:
    """A number as JavaScript prints it, which is what Bitfinex's checksum hashes.

    ``0.00005`` (Python ``5e-05``), ``30000`` for a whole float, exponents only below
    1e-6 or from 1e21 (``1e-7``).
    """
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:  # beyond, repr has the shortest digits
        return str(int(value))
    text = repr(value)
    if "e" not in text:
        return text
    mantissa, exp_text = text.split("e")
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    digits = mantissa.replace(".", "")
    point = (mantissa.index(".") if "." in mantissa else len(mantissa)) + int(exp_text)
    if -6 < point <= 21:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    exp = point - 1
    head = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{sign}{head}e{'+' if exp > 0 else '-'}{abs(exp)}"


def _book_len(depth: int) -> int:
    for length in _BOOK_LENGTHS:
        if length >= depth:
            return length
    raise errors.NoCapability(f"bitfinex streams at most 250 book levels, not {depth}")


class BitfinexWs(ws.WsSource):
    """Bitfinex's streaming hooks, mixed into ``BitfinexSource``."""

    #: Bitfinex sends a heartbeat per channel every 15 s of silence.
    ws_idle_timeout_s: ClassVar[float] = 45.0
    book_protocol: ClassVar[ws.BookProtocol] = ws.BookProtocol.checksummed(_CHECKSUM_DEPTH)

    @cached_property
    def _channels(self) -> dict[int, tuple[str, Symbol, Span | None]]:
        """chanId -> (channel, symbol, span), from the ``subscribed`` events."""
        return {}

    @cached_property
    def _open_bars(self) -> dict[int, list[Any]]:
        """chanId -> the running (not yet closed) candle row."""
        return {}

    # -- connecting ----------------------------------------------------------------------

    def ws_url(self, sub: ws.WsSubscription) -> str:
        """``wss://api-pub.bitfinex.com/ws/2`` (origin from the endpoints)."""
        if len(sub.symbols) > _MAX_CHANNELS:
            raise errors.NoCapability(
                f"bitfinex allows {_MAX_CHANNELS} channels per connection, not "
                f"{len(sub.symbols)}; split the symbols into several streams"
            )
        if sub.data_type is DataType.OHLC and (
            sub.span is None or sub.span not in CANDLE_TIMEFRAMES
        ):
            spans = " ".join(s.label for s in CANDLE_TIMEFRAMES)
            raise errors.NoCapability(
                f"bitfinex streams candles of {spans} only; {features.DERIVE_HINT}"
            )
        if sub.data_type is DataType.BOOK:
            _book_len(sub.book_depth)
        return f"{self._ws_origin(WS_URL)}/ws/2"

    def ws_subscribe_messages(self, sub: ws.WsSubscription) -> list[str | bytes | dict[str, Any]]:
        """The conf flags, then one subscribe per symbol (re-sent on every connect)."""
        messages: list[str | bytes | dict[str, Any]] = []
        if sub.data_type is DataType.BOOK:
            messages.append({"event": "conf", "flags": OB_CHECKSUM})
        for symbol in sub.symbols:
            native = to_native(symbol)
            if sub.data_type is DataType.TRADES:
                messages.append({"event": "subscribe", "channel": "trades", "symbol": native})
            elif sub.data_type is DataType.OHLC:
                assert sub.span is not None
                key = f"trade:{CANDLE_TIMEFRAMES[sub.span]}:{native}"
                messages.append({"event": "subscribe", "channel": "candles", "key": key})
            else:
                messages.append(
                    {
                        "event": "subscribe",
                        "channel": "book",
                        "symbol": native,
                        "prec": "P0",
                        "freq": "F0",
                        "len": str(_book_len(sub.book_depth)),
                    }
                )
        return messages

    # -- parsing -------------------------------------------------------------------------

    def parse_ws_frame(self, raw: str | bytes) -> Sequence[ws.WsEvent | ws.WsRecords]:
        """One frame to events (see the module docstring), trades as records."""
        msg = ws.decode_frame(raw, "bitfinex ws", 80)
        if isinstance(msg, dict):
            return [self._event(msg)]
        if not isinstance(msg, list) or len(msg) < 2 or not isinstance(msg[0], int):
            raise errors.UnexpectedPayload(f"bitfinex ws: unknown frame {str(msg)[:80]}")
        chan_id, body = msg[0], msg[1]
        if body == "hb":
            return [ws.WsIgnore("heartbeat")]
        channel = self._channels.get(chan_id)
        if channel is None:
            return [ws.WsIgnore(f"frame of unknown channel {chan_id}")]
        kind, symbol, span = channel
        if kind == "trades":
            return self._trades(symbol, msg)
        if kind == "candles":
            assert span is not None
            return self._candles(chan_id, symbol, span, body)
        return self._book(symbol, msg)

    def _event(self, msg: dict[str, Any]) -> ws.WsEvent:
        event = msg.get("event")
        if event == "error":
            raise errors.ExchangeError(f"bitfinex ws error {msg.get('code')}: {msg.get('msg')}")
        if event == "subscribed":
            chan_id = msg.get("chanId")
            channel = msg.get("channel")
            if not isinstance(chan_id, int) or channel not in ("trades", "candles", "book"):
                raise errors.UnexpectedPayload(f"bitfinex ws: bad subscribed event {msg}")
            if channel == "candles":
                _, timeframe, native = str(msg.get("key")).split(":", 2)
                span = next(s for s, tf in CANDLE_TIMEFRAMES.items() if tf == timeframe)
                self._channels[chan_id] = (channel, from_native(native), span)
            else:
                self._channels[chan_id] = (channel, from_native(str(msg.get("symbol"))), None)
            self._open_bars.pop(chan_id, None)
            return ws.WsIgnore(f"subscribed {channel} {chan_id}")
        return ws.WsIgnore(str(event))

    def _trades(self, symbol: Symbol, msg: list[Any]) -> Sequence[ws.WsEvent | ws.WsRecords]:
        body = msg[1]

        def build(records: list[Any]) -> ws.WsEvent:
            return ws.WsTrades(symbol, parse_trades(records))

        if isinstance(body, list):  # snapshot of recent trades
            return [ws.WsRecords(("trades", symbol), body, build)]
        if body == "te" and len(msg) >= 3:
            return [ws.WsRecords(("trades", symbol), [msg[2]], build)]
        if body == "tu":
            return [ws.WsIgnore("trade update (already seen as te)")]
        raise errors.UnexpectedPayload(f"bitfinex ws trades: unknown frame {str(msg)[:80]}")

    def _candles(self, chan_id: int, symbol: Symbol, span: Span, body: Any) -> list[ws.WsEvent]:
        if not isinstance(body, list):
            raise errors.UnexpectedPayload(f"bitfinex ws candles: unknown frame {str(body)[:80]}")
        rows = body if body and isinstance(body[0], list) else ([body] if body else [])
        if not rows:
            return [ws.WsIgnore("empty candle snapshot")]
        rows = sorted(rows, key=lambda r: r[0] if isinstance(r, list) and r else 0)
        running = self._open_bars.get(chan_id)
        if running is not None and running[0] < rows[0][0]:
            rows = [running, *rows]
        self._open_bars[chan_id] = rows[-1]
        frame = parse_candles(rows)
        now = now_ns()
        newest = frame["ts"].max()
        closed = (frame["ts"] < newest) | (frame["ts"] + span.ns <= now)
        return [ws.WsCandles(symbol, span, frame.with_columns(closed.alias("closed")))]

    def _book(self, symbol: Symbol, msg: list[Any]) -> list[ws.WsEvent]:
        body = msg[1]
        ts = now_ns()
        if body == "cs":
            if len(msg) < 3 or not isinstance(msg[2], int):
                raise errors.UnexpectedPayload(
                    f"bitfinex ws book: bad checksum frame {str(msg)[:80]}"
                )
            return [
                ws.WsBook(symbol, ts, False, [], [], checksum=msg[2], bid_texts=[], ask_texts=[])
            ]
        if not isinstance(body, list):
            raise errors.UnexpectedPayload(f"bitfinex ws book: unknown frame {str(msg)[:80]}")
        snapshot = not body or isinstance(body[0], list)
        rows = body if snapshot else [body]
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        bid_texts: list[tuple[str, str]] = []
        ask_texts: list[tuple[str, str]] = []
        for row in rows:
            try:
                price, count, amount = row[0], row[1], row[2]
                price_f, amount_f, count_i = float(price), float(amount), int(count)
            except (TypeError, ValueError, IndexError):
                raise errors.UnexpectedPayload(f"bitfinex ws book: bad level {row!r}") from None
            if amount_f == 0:
                raise errors.UnexpectedPayload(f"bitfinex ws book: level with amount 0: {row!r}")
            size = 0.0 if count_i == 0 else abs(amount_f)
            texts = (js_number_text(price), js_number_text(amount))
            if amount_f > 0:
                bids.append((price_f, size))
                bid_texts.append(texts)
            else:
                asks.append((price_f, size))
                ask_texts.append(texts)
        return [
            ws.WsBook(symbol, ts, snapshot, bids, asks, bid_texts=bid_texts, ask_texts=ask_texts)
        ]

    def book_checksum(
        self, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]
    ) -> int:
        """CRC32 (signed) of ``bid price:bid amount:ask price:ask amount:...``, top 25."""
        return interleaved_checksum(bids, asks, _CHECKSUM_DEPTH)
