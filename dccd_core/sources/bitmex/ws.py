"""BitMEX realtime API hooks: ``trade``, ``tradeBin{1m,5m,1h,1d}``, ``orderBookL2_25`` and
``liquidation`` (see ``liquidations.py``: which of its actions is a liquidation).

Docs: https://www.bitmex.com/app/wsAPI . Topics are subscribed in the URL,
``wss://ws.bitmex.com/realtime?subscribe=trade:XBTUSD,trade:XBTUSDT``, so a reconnect
resubscribes by itself. The server greets with ``{"info": "Welcome to the BitMEX
Realtime API.", ...}``, confirms each topic with ``{"success": true, "subscribe":
"trade:XBTUSD"}`` and then pushes table messages::

    {"table": "trade", "action": "insert", "data": [{"timestamp":
      "2024-01-01T00:00:07.415Z", "symbol": "XBTUSD", "side": "Sell", "size": 2300,
      "price": 42290.5, "trdMatchID": "00000000-006d-1000-0000-0003a1b2c3d4",
      "homeNotional": 0.05438574, "foreignNotional": 2300, ...}]}

* ``trade`` rows are the REST ``/trade`` rows, parsed by ``parse.parse_trades``: one
  side mapping, ``homeNotional`` amounts and ``trdMatchID`` ids on both paths.
* ``tradeBin1m`` rows are the REST bucketed rows: stamped at the bar's END and
  published once the bar is complete; ``parse.parse_candles`` moves them to the open.
* ``orderBookL2_25``: a ``partial`` (the top 25 levels a side), then ``insert`` /
  ``update`` / ``delete`` rows addressed by level ``id``. No sequence numbers and no
  checksum: a lost frame shows only as a delta for an id we do not know, which
  ``l2.L2Index`` turns into a gap, and the stream resubscribes (reconnects).
* Errors: ``{"status": 400, "error": "Unknown table: foo", ...}`` -> ``ExchangeError``.
* Keep-alive: BitMEX asks clients to send the text ``ping`` after 5 s without a
  message and to expect ``pong``; we send it every 5 s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, ClassVar, Protocol

import polars as pl

from dccd_core.domain import DataType, Span, Symbol, errors, now_ns

from .. import columns, features, ws
from .capability import BIN_SIZES, WS_URL
from .l2 import L2Index
from .liquidations import STORED_ACTION as LIQUIDATION_ACTION
from .liquidations import TABLE as LIQUIDATION_TABLE
from .liquidations import parse_liquidations
from .parse import ContractSpec, parse_candles, parse_trades
from .symbols import from_native, to_native

__all__ = ["BOOK_TABLE", "BitmexWs"]

BOOK_TABLE = "orderBookL2_25"
BOOK_DEPTH = 25
_BIN_TABLES: dict[str, Span] = {f"tradeBin{size}": span for span, size in BIN_SIZES.items()}


class _ContractTerms(Protocol):
    """What ``prepare_ws`` asks of the host source (``BitmexRest``, over REST)."""

    async def fetch_instruments(self) -> dict[str, tuple[str, ContractSpec]]: ...

    async def contract_spec(self, symbol: Symbol) -> ContractSpec: ...


class BitmexWs(ws.WsSource):
    """Streaming hooks of the BitMEX realtime API, mixed into ``BitmexSource``."""

    ws_ping: ClassVar[ws.WsPing | None] = ws.WsPing("ping", 5.0)
    #: a ``pong`` (or data) comes back within 5 s of each ping on a live connection
    ws_idle_timeout_s: ClassVar[float] = 15.0
    #: snapshot from the WS ``partial``; no sequence ids, no checksum; resync = resubscribe
    book_protocol: ClassVar[ws.BookProtocol] = ws.BookProtocol.resubscribing()

    #: native symbol -> (typ, contract terms): the host ``BitmexRest``'s, once fetched
    instruments: dict[str, tuple[str, ContractSpec]] | None

    @cached_property
    def _l2(self) -> dict[str, L2Index]:
        """Native symbol -> its book's level index on the current connection."""
        return {}

    # -- connecting ----------------------------------------------------------------------

    async def prepare_ws(self: _ContractTerms, sub: ws.WsSubscription) -> None:
        """Fetch the contract terms before streaming (the WS parsers are synchronous).

        Book and liquidation sizes are contracts and need them; a quanto is refused
        here, before connecting, rather than on its first frame.
        """
        await self.fetch_instruments()
        if sub.data_type in (DataType.BOOK, DataType.LIQUIDATIONS):
            for symbol in sub.symbols:
                spec = await self.contract_spec(symbol)
                spec.base_amount(1.0, 1.0, f"bitmex book {symbol}")  # NoCapability for quantos

    def ws_topics(self, sub: ws.WsSubscription) -> list[str]:
        """``trade:XBTUSD``, ``tradeBin1m:XBTUSD``, ``orderBookL2_25:XBTUSD`` or
        ``liquidation:XBTUSD`` per symbol."""
        if sub.data_type is DataType.TRADES:
            table = "trade"
        elif sub.data_type is DataType.OHLC:
            if sub.span is None or sub.span not in BIN_SIZES:
                spans = " ".join(s.label for s in BIN_SIZES)
                raise errors.NoCapability(
                    f"bitmex streams candles of {spans} only; {features.DERIVE_HINT}"
                )
            table = f"tradeBin{BIN_SIZES[sub.span]}"
        elif sub.data_type is DataType.BOOK:
            if sub.book_depth > BOOK_DEPTH:
                raise errors.NoCapability(
                    f"bitmex streams {BOOK_DEPTH} book levels a side ({BOOK_TABLE}), not "
                    f"{sub.book_depth}; use book_depth <= {BOOK_DEPTH}"
                )
            table = BOOK_TABLE
        elif sub.data_type is DataType.LIQUIDATIONS:
            table = LIQUIDATION_TABLE
        else:  # pragma: no cover - the capability declares no other stream
            raise errors.NoCapability(f"bitmex does not stream {sub.data_type}")
        return [f"{table}:{to_native(s)}" for s in sub.symbols]

    def ws_url(self, sub: ws.WsSubscription) -> str:
        """``{origin}/realtime?subscribe=topic,topic`` (origin from the endpoints)."""
        return f"{self._ws_origin(WS_URL)}/realtime?subscribe={','.join(self.ws_topics(sub))}"

    # -- parsing -------------------------------------------------------------------------

    def _trades_builder(self, native: str) -> Callable[[list[Any]], ws.WsEvent]:
        spec = self._spec_or_none(native)

        def build(records: list[Any]) -> ws.WsEvent:
            return ws.WsTrades(from_native(native), parse_trades(records, spec))

        return build

    def parse_ws_frame(self, raw: str | bytes) -> Sequence[ws.WsEvent | ws.WsRecords]:
        """One frame to events (see the module docstring), trades as records."""
        if raw in ("pong", b"pong"):
            return [ws.WsIgnore("pong")]
        msg = ws.decode_frame(raw, "bitmex ws", 80)
        if not isinstance(msg, dict):
            raise errors.UnexpectedPayload(f"bitmex ws: unknown frame {str(msg)[:80]}")
        table = msg.get("table")
        if table is None:
            return [self._control(msg)]
        action, data = msg.get("action"), msg.get("data")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise errors.UnexpectedPayload(f"bitmex ws {table}: data is not a list of objects")
        if table == "trade":
            if action not in ("partial", "insert"):
                raise errors.UnexpectedPayload(f"bitmex ws trade: unexpected action {action!r}")
            return [
                ws.WsRecords(("trades", native), rows, self._trades_builder(native))
                for native, rows in _by_symbol(data).items()
            ]
        if table in _BIN_TABLES:
            span = _BIN_TABLES[table]
            events: list[ws.WsEvent] = []
            for native, rows in _by_symbol(data).items():
                frame = parse_candles(rows, span)  # BitMEX publishes complete bins only
                events.append(
                    ws.WsCandles(from_native(native), span, frame.with_columns(closed=pl.lit(True)))
                )
            return events
        if table == BOOK_TABLE:
            return self._book(str(action), msg, data)
        if table == LIQUIDATION_TABLE:
            return self._liquidations(action, data)
        raise errors.UnexpectedPayload(f"bitmex ws: unknown table {table!r}")

    def _liquidations(self, action: Any, data: list[dict[str, Any]]) -> list[ws.WsEvent]:
        """An ``insert``'s rows as liquidations, stamped now; other actions ignored."""
        if action not in ("partial", "insert", "update", "delete"):
            raise errors.UnexpectedPayload(f"bitmex ws liquidation: unknown action {action!r}")
        if action != LIQUIDATION_ACTION:
            return [ws.WsIgnore(f"liquidation {action}: an order's progress, not a new one")]
        received = now_ns()
        events: list[ws.WsEvent] = []
        for native, rows in _by_symbol(data).items():
            what = f"bitmex ws liquidation {native}"
            frame = parse_liquidations(rows, self._spec(native, what), received, what)
            events.append(ws.WsLiquidations(from_native(native), frame))
            received += len(rows)
        return events

    def _control(self, msg: dict[str, Any]) -> ws.WsEvent:
        if "error" in msg:
            raise errors.ExchangeError(
                f"bitmex ws error (status {msg.get('status', '?')}): {msg['error']}; "
                "check the subscribed symbols and tables"
            )
        if "info" in msg:  # the greeting of a new connection: books restart from a partial
            for index in self._l2.values():
                index.reset()
            return ws.WsIgnore("welcome")
        if msg.get("success") is True:
            return ws.WsIgnore(f"subscribed {msg.get('subscribe', '')}")
        raise errors.UnexpectedPayload(f"bitmex ws: unknown message {str(msg)[:80]}")

    def _book(
        self, action: str, msg: dict[str, Any], data: list[dict[str, Any]]
    ) -> list[ws.WsEvent]:
        groups = _by_symbol(data)
        if action == "partial" and not groups:  # an empty book still starts a snapshot
            native = (msg.get("filter") or {}).get("symbol")
            if isinstance(native, str):
                groups = {native: []}
        events: list[ws.WsEvent] = []
        for native, rows in groups.items():
            what = f"bitmex ws book {native}"
            index = self._l2.setdefault(native, L2Index())
            delta = index.apply(action, rows, self._spec(native, what), what)
            symbol = from_native(native)
            if delta is None:
                events.append(ws.WsIgnore(f"{native} book delta before its partial"))
            elif delta.lost:
                events.append(ws.WsBook(symbol, now_ns(), False, [], [], delta.seq, delta.seq))
            else:
                events.append(
                    ws.WsBook(
                        symbol,
                        _newest_ts(rows, what),
                        action == "partial",
                        delta.bids,
                        delta.asks,
                        first_seq=delta.seq,
                        last_seq=delta.seq,
                    )
                )
        return events

    # -- contract terms ------------------------------------------------------------------

    def _spec_or_none(self, native: str) -> ContractSpec | None:
        found = (self.instruments or {}).get(native)
        return found[1] if found else None

    def _spec(self, native: str, what: str) -> ContractSpec:
        """Contract terms for book sizes: fetched by ``prepare_ws``, else the name's."""
        found = self._spec_or_none(native)
        if found is not None:
            return found
        if native.endswith("USD"):
            return ContractSpec(inverse=True)
        raise errors.NoCapability(
            f"{what}: contract terms of {native} unknown; the stream fetches them from "
            "/api/v1/instrument/active before connecting (is the REST URL reachable?)"
        )


def _by_symbol(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by their ``symbol``, in arrival order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        native = row.get("symbol")
        if not isinstance(native, str):
            raise errors.UnexpectedPayload(f"bitmex ws: a row without symbol: {str(row)[:80]}")
        groups.setdefault(native, []).append(row)
    return groups


def _newest_ts(rows: Sequence[dict[str, Any]], what: str) -> int:
    """The newest row ``timestamp`` (ISO texts of one format sort as times), else now."""
    stamps = [r["timestamp"] for r in rows if isinstance(r.get("timestamp"), str)]
    if not stamps:
        return now_ns()
    return int(columns.iso_to_ns_column("ts", [max(stamps)], what)[0])
