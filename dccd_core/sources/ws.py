"""The streaming contract: the hooks an exchange source implements to be streamed.

A source that streams mixes in :class:`WsSource` (itself a :class:`~.base.Source`, so
the hooks may use ``endpoints``, ``native_symbol`` and ``_get``) next to its REST class:
``class BinanceSource(BinanceWs, BinanceRest)``. What it streams is not declared twice:
``ws_data_types`` is read from the ``capability``'s WebSocket features.
It only knows its wire format: where to connect, what to send, and how to turn one
frame into events. Connecting, reconnecting, pinging, batching, book upkeep, gap
healing from REST and flushing live once in ``dccd_core.transport.ws`` and
``dccd_core.operations.stream``; a source never loops, sleeps or buffers.

Hooks (Binance examples, see ``dccd_core/sources/binance/ws.py``):

* ``ws_url(sub)`` — the full URL for one subscription, e.g. the combined stream
  ``wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade``.
* ``ws_subscribe_messages(sub)`` — frames sent after every (re)connect, e.g. OKX
  ``{"op": "subscribe", "args": [...]}``. Binance subscribes in the URL: ``[]``.
* ``parse_ws_frame(raw)`` — pure: one text/bytes frame in, a list of events out:
  :class:`WsTrades` / :class:`WsCandles` (polars frames in the domain schemas; candles
  carry an extra Boolean ``closed`` column), :class:`WsBook` (levels + sequence ids +
  checksum), :class:`WsIgnore` (acks, pongs, heartbeats, subscription confirmations).
  An exchange error frame raises ``ExchangeError``; an unknown shape raises
  ``UnexpectedPayload``. Trade sides MUST come from the same normalisation function as
  the REST parser (Binance ``m=true`` -> taker sold, in both paths).
* ``parse_ws_message(raw)`` / ``parse_ws_messages(raws)`` — one frame, or a batch in
  arrival order, to events; by default both run ``parse_ws_frame`` and
  ``merge_ws_records``. The stream hands over every frame of a flush interval at once,
  and an exchange sends a trade or two per frame: building a polars frame per frame
  costs ~100x the JSON decode. So ``parse_ws_frame`` returns :class:`WsRecords` (the
  frame's plain rows, a key and the builder) for its trades, and ``merge_ws_records``
  builds each key's rows once per batch, with the same builder (the REST parser's
  column rules) for one frame or thousands. A source may instead override
  ``parse_ws_messages`` (Binance reuses its REST aggTrades parser on the batch: the WS
  ``data`` objects carry the same keys) or ``parse_ws_message`` alone.
* ``ws_ping`` — an app-level ping: frame + interval where the exchange needs one
  (OKX ``"ping"`` every 20 s, Bybit ``{"op":"ping"}`` every 20 s); ``None`` where
  protocol pings suffice (Binance). Server heartbeats (Kraken, Bitfinex) are
  parsed into :class:`WsIgnore`; ``ws_idle_timeout_s`` bounds silence.
* ``ws_max_session_s`` — the exchange's forced disconnect (Binance: 24 h); the client
  reconnects proactively a little before.
* ``book_protocol`` — how a book is built: :class:`BookProtocol` (REST snapshot + deltas
  with update ids like Binance; WS snapshot + deltas with seq like Bybit/OKX; with a
  checksum like Kraken/OKX/Bitfinex; or snapshots only).
* ``fetch_ws_book_snapshot(symbol, depth)`` — the REST snapshot for ``REST_SNAPSHOT``
  protocols, as a :class:`WsBook` with ``last_seq`` (Binance ``lastUpdateId``).
* ``check_book_sequence(prev_last_seq, update)`` — may this delta be applied to a book
  whose last applied id is ``prev_last_seq``? The default implements the common rules
  (``prev_seq`` chaining where the exchange sends it, else ``first_seq`` contiguity,
  stale updates skipped). Binance spot: ``U <= last+1 <= u``; futures: ``pu == last``.
* ``book_checksum(bids, asks)`` — for checksum protocols: the exchange's checksum of
  the maintained book (top levels, best first, as the raw texts the exchange sent).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, ClassVar

import orjson
import polars as pl

from dccd_core.domain import DataType, NoCapability, Span, Symbol, Transport, UnexpectedPayload

from .base import Source

__all__ = [
    "BookLevels",
    "BookProtocol",
    "BookSync",
    "SeqCheck",
    "WsBook",
    "WsCandles",
    "WsEvent",
    "WsIgnore",
    "WsLiquidations",
    "WsPing",
    "WsRecords",
    "WsSource",
    "WsSubscription",
    "WsTrades",
    "decode_frame",
    "merge_ws_records",
]

#: Book levels as sent, normalised: (price, amount) pairs; amount 0 removes a level.
BookLevels = Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class WsSubscription:
    """What one connection collects: one data type for several symbols of one exchange."""

    data_type: DataType
    symbols: tuple[Symbol, ...]
    span: Span | None = None
    book_depth: int = 20


# -- events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WsTrades:
    """Trades of one symbol, ``rows`` in the trades schema (ts ns, trade_id, ...)."""

    symbol: Symbol
    rows: pl.DataFrame


@dataclass(frozen=True, slots=True)
class WsCandles:
    """Candles of one symbol: ohlc schema plus a Boolean ``closed`` column.

    Only closed bars are stored; an open bar is a progress report.
    """

    symbol: Symbol
    span: Span
    rows: pl.DataFrame


@dataclass(frozen=True, slots=True)
class WsBook:
    """A book snapshot (replaces the book) or delta (amount 0 deletes a level).

    ``first_seq``/``last_seq``: the update ids this message covers (Binance ``U``/``u``,
    OKX ``seqId`` in both, Bybit ``u`` in both). ``prev_seq``: the id the previous
    message ended with, where the exchange sends it (Binance futures ``pu``, OKX
    ``prevSeqId``). ``checksum``: the exchange's checksum of the book *after* applying
    this message (Kraken, OKX, Bitfinex). ``bid_texts``/``ask_texts``: the raw price and
    amount texts, parallel to ``bids``/``asks``, for checksum exchanges only.
    """

    symbol: Symbol
    ts: int
    snapshot: bool
    bids: BookLevels
    asks: BookLevels
    first_seq: int | None = None
    last_seq: int | None = None
    prev_seq: int | None = None
    checksum: int | None = None
    bid_texts: Sequence[tuple[str, str]] | None = None
    ask_texts: Sequence[tuple[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class WsLiquidations:
    """Liquidations of one symbol, ``rows`` in the liquidations schema."""

    symbol: Symbol
    rows: pl.DataFrame


@dataclass(frozen=True, slots=True)
class WsIgnore:
    """A frame with no data: ack, pong, heartbeat, subscription confirmation."""

    reason: str = ""


WsEvent = WsTrades | WsCandles | WsBook | WsLiquidations | WsIgnore


@dataclass(frozen=True, slots=True)
class WsRecords:
    """Rows of one frame not built yet: ``build(records)`` makes the event (or the
    events: one per symbol where a frame mixes symbols, as Kraken's may).

    Frames whose records share ``key`` (e.g. ``("trades", "BTC-USDT")``) and arrive in
    one batch are built together, records in arrival order (``merge_ws_records``).
    ``build`` must accept the records of any number of frames (a list of the row
    objects or arrays the exchange sends).
    """

    key: Hashable
    records: Sequence[Any]
    build: Callable[[list[Any]], WsEvent | Sequence[WsEvent]]


def merge_ws_records(
    items: Iterable[WsEvent | WsRecords], *, in_place: bool = False
) -> list[WsEvent]:
    """Events in order, then each key's records built once (in first-seen key order).

    A stream carries one data type, so building trades after acks or heartbeats of the
    same batch changes no order that matters; a bad value anywhere in a key's records
    raises ``UnexpectedPayload`` for the batch, as it would for its frame. ``in_place``
    puts each key's events where its first records arrived instead (Coinbase).
    """
    events: list[WsEvent] = []
    pending: dict[
        Hashable, tuple[list[Any], Callable[[list[Any]], WsEvent | Sequence[WsEvent]]]
    ] = {}
    slots: dict[Hashable, int] = {}
    for item in items:
        if isinstance(item, WsRecords):
            slot = pending.get(item.key)
            if slot is None:
                pending[item.key] = (list(item.records), item.build)
                if in_place:
                    slots[item.key] = len(events)
                    events.append(WsIgnore("placeholder"))
            else:
                slot[0].extend(item.records)
        else:
            events.append(item)
    built_at: dict[int, list[WsEvent]] = {}
    for key, (records, build) in pending.items():
        built = build(records)
        group = (
            [built]
            if isinstance(built, WsTrades | WsCandles | WsBook | WsLiquidations | WsIgnore)
            else built
        )
        if key in slots:
            built_at[slots[key]] = list(group)
        else:
            events.extend(group)
    if not built_at:
        return events
    return [e for i, ev in enumerate(events) for e in built_at.get(i, [ev])]


def decode_frame(raw: str | bytes, what: str, shown: int = 200) -> Any:
    """A JSON frame decoded; anything else is ``UnexpectedPayload`` naming ``what`` and
    the first ``shown`` characters."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UnexpectedPayload(f"{what}: not JSON: {raw[:shown]!r}") from None


# -- declarations ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WsPing:
    """An app-level ping: send ``message`` every ``interval_s`` (OKX: ``"ping"``, 20 s)."""

    message: str | bytes | dict[str, Any]
    interval_s: float = 20.0


class BookSync(StrEnum):
    """Where the first full book comes from."""

    REST_SNAPSHOT = "rest_snapshot"  # Binance: GET /depth lastUpdateId, then WS deltas
    WS_SNAPSHOT = "ws_snapshot"  # Bybit, OKX, Kraken, Bitfinex: first WS message
    SNAPSHOTS_ONLY = "snapshots_only"  # every message is a full (partial-depth) book


@dataclass(frozen=True, slots=True)
class BookProtocol:
    """How an exchange's book stream is kept consistent.

    ``checksum``: messages carry a checksum to verify after each apply.
    ``checksum_depth``: how many levels per side the checksum covers (Kraken 10,
    OKX 25, Bitfinex 25). ``resubscribe_on_gap``: a gap is healed by reconnecting (WS
    snapshot protocols) rather than by a new REST snapshot. ``truncate_to_depth``: the
    exchange sends no delete for a level pushed out of the subscribed depth, so the
    book keeps only that many levels a side after every message (Kraken; else a level
    that left the range could come back stale and break the checksum).
    """

    sync: BookSync
    checksum: bool = False
    checksum_depth: int = 0
    resubscribe_on_gap: bool = False
    truncate_to_depth: bool = False

    @classmethod
    def resubscribing(cls) -> BookProtocol:
        """WS snapshot + deltas without a checksum; a gap (a sequence break, a crossed
        book, an unknown level) resubscribes (Bybit, Coinbase, BitMEX)."""
        return cls(BookSync.WS_SNAPSHOT, resubscribe_on_gap=True)

    @classmethod
    def checksummed(cls, checksum_depth: int, *, truncate_to_depth: bool = False) -> BookProtocol:
        """WS snapshot + deltas, each verified by a checksum over ``checksum_depth``
        levels a side; a gap or a mismatch resubscribes (Kraken, OKX, Bitfinex)."""
        return cls(
            BookSync.WS_SNAPSHOT,
            checksum=True,
            checksum_depth=checksum_depth,
            resubscribe_on_gap=True,
            truncate_to_depth=truncate_to_depth,
        )


class SeqCheck(Enum):
    """Verdict of :meth:`WsSource.check_book_sequence`."""

    APPLY = "apply"
    STALE = "stale"  # already contained in the book (e.g. older than the REST snapshot)
    GAP = "gap"  # something was missed: resync


# -- the contract ----------------------------------------------------------------------


class WsSource(Source):
    """Mixin declaring a source's streaming hooks; see the module docstring."""

    #: True where the stream's trade ids are consecutive integers per symbol (Coinbase
    #: ``matches``, Kraken v2 ``trade``), so a skipped frame shows as an id jump and is
    #: healed from REST. Unlike ``Source.sequential_trade_ids`` it promises nothing to
    #: the REST paginator (which checks ids page by page, forward only).
    ws_sequential_trade_ids: ClassVar[bool] = False
    ws_ping: ClassVar[WsPing | None] = None
    ws_idle_timeout_s: ClassVar[float] = 60.0
    ws_max_session_s: ClassVar[float | None] = None
    book_protocol: ClassVar[BookProtocol] = BookProtocol(BookSync.SNAPSHOTS_ONLY)
    #: A batch's built records stand where their key's first frame was, not after the
    #: batch's other events (``merge_ws_records(in_place=True)``).
    ws_records_in_place: ClassVar[bool] = False
    #: native name -> symbol of the subscription being parsed (set by ``ws_url``)
    _ws_symbols: dict[str, Symbol]

    @property
    def ws_data_types(self) -> tuple[DataType, ...]:
        """Data types the source streams: its capability's WebSocket features, in order."""
        features = self.capability.features
        return tuple(dict.fromkeys(f.data_type for f in features if f.transport is Transport.WS))

    async def prepare_ws(self, sub: WsSubscription) -> None:
        """Async set-up the synchronous hooks need, before connecting (OKX: swap
        contract sizes); none by default."""
        return None

    def _ws_origin(self, default: str) -> str:
        """The WebSocket origin: the endpoints' (catalog, env, a fake), else ``default``."""
        return (self.endpoints.ws_url or default).rstrip("/")

    def _subscribe(self, sub: WsSubscription, native: Callable[[Symbol], str]) -> None:
        """Remember the subscription's symbols by ``native(symbol)`` for ``_ws_symbol``."""
        self._ws_symbols = {native(s): s for s in sub.symbols}

    def _ws_symbol(self, native: object, kind: str = "symbol") -> Symbol:
        """The subscribed symbol a frame names; ``UnexpectedPayload`` for any other."""
        try:
            return self._ws_symbols[str(native)]
        except (AttributeError, KeyError):
            raise UnexpectedPayload(f"{self.id} stream: unsubscribed {kind} {native!r}") from None

    def ws_url(self, sub: WsSubscription) -> str:
        """The URL to connect to for ``sub`` (origin from the endpoints + path/query)."""
        raise NoCapability(f"{type(self).__name__} does not stream {sub.data_type}")

    def ws_subscribe_messages(self, sub: WsSubscription) -> list[str | bytes | dict[str, Any]]:
        """Frames to send after each (re)connect; dicts are sent as JSON."""
        return []

    def parse_ws_frame(self, raw: str | bytes) -> Sequence[WsEvent | WsRecords]:
        """One frame in (pure): events, and rows as ``WsRecords`` to build per batch.
        Raise ``UnexpectedPayload``/``ExchangeError``. A source overriding
        ``parse_ws_message`` instead is asked through it."""
        if type(self).parse_ws_message is WsSource.parse_ws_message:
            raise NoCapability(f"{type(self).__name__} has no WebSocket parser")
        return self.parse_ws_message(raw)

    def parse_ws_message(self, raw: str | bytes) -> list[WsEvent]:
        """One frame in, events out (pure): ``parse_ws_frame``'s records built."""
        return merge_ws_records(self.parse_ws_frame(raw), in_place=self.ws_records_in_place)

    def parse_ws_messages(self, raws: Sequence[str | bytes]) -> list[WsEvent]:
        """A batch of frames in arrival order: each key's records built once."""
        items = (item for raw in raws for item in self.parse_ws_frame(raw))
        return merge_ws_records(items, in_place=self.ws_records_in_place)

    async def fetch_ws_book_snapshot(self, symbol: Symbol, depth: int) -> WsBook:
        """The REST snapshot a ``REST_SNAPSHOT`` book starts from, with ``last_seq``."""
        raise NoCapability(f"{type(self).__name__} has no book snapshot with update ids")

    def check_book_sequence(
        self, prev_last_seq: int | None, update: WsBook, *, first: bool = False
    ) -> SeqCheck:
        """May ``update`` follow a book whose last applied id is ``prev_last_seq``?

        ``first``: the first delta after a snapshot (ids may overlap the snapshot).
        Default rules: no ids on either side -> apply; ``last_seq <= prev`` -> stale;
        first delta: ``first_seq <= prev + 1`` (Binance: ``U <= lastUpdateId+1 <= u``);
        later deltas: ``prev_seq == prev`` where the exchange sends it (Binance futures
        ``pu``, OKX ``prevSeqId``), else ``first_seq <= prev + 1``.
        """
        if prev_last_seq is None or update.last_seq is None:
            return SeqCheck.APPLY
        if update.last_seq <= prev_last_seq:
            return SeqCheck.STALE
        if not first and update.prev_seq is not None:
            return SeqCheck.APPLY if update.prev_seq == prev_last_seq else SeqCheck.GAP
        if update.first_seq is not None and update.first_seq > prev_last_seq + 1:
            return SeqCheck.GAP
        return SeqCheck.APPLY

    def book_checksum(
        self, bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]
    ) -> int:
        """The exchange's checksum of the top ``checksum_depth`` levels (best first)."""
        raise NoCapability(f"{type(self).__name__} declares no book checksum")

