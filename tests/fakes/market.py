"""The one seeded market every fake draws its truth from: candles, trade tapes, truth frames.

Everything is a pure function of (seed, time) or (seed, index), so a test asks the fake
for the truth instead of recording it. One hash (``unit``) drives every candle; the
fakes only choose how the wire writes the numbers:

* ``seeded_bar`` is the bar model (holes, a slow drift, open/close around it, high/low
  outside them); ``SeededCandles`` (ms grid, decimal strings: Bybit, OKX) and
  ``bar_at`` (second grid, cent floats with vwap and count: Coinbase, Kraken) are its
  two wire shapes.
* ``SeededTape`` (ms, strings, a burst every ~20 trades and one bigger than two pages:
  Bybit, OKX) and ``Tape`` (µs, floats, bursts where a test puts them, a live clock:
  Coinbase, Kraken) are trade tapes with same-time bursts straddling page boundaries.
* ``ohlc_frame`` / ``trades_frame`` turn truth columns into the store's schema.

Binance's lazily generated years of data (``tests.fakes.binance.MarketData``) and the
per-second tapes of Bitfinex and BitMEX keep their own arithmetic: their volumes and
id schemes are part of the quirks those fakes reproduce.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

import polars as pl

from dccd_core.domain import DataType, schema_for
from tests.fakes.server import WsFake

__all__ = [
    "OHLC_SCHEMA",
    "TRADES_SCHEMA",
    "Bar",
    "Book",
    "CentBar",
    "ClockMarket",
    "LiveTapeFeed",
    "SecondsMarket",
    "SeededCandles",
    "SeededTape",
    "Tape",
    "TapeMarket",
    "TapeRow",
    "Trade",
    "bar_at",
    "bars_frame",
    "burst_stamps",
    "cent_bars_frame",
    "now_us",
    "ohlc_frame",
    "second_stamps",
    "seeded_bar",
    "tape_frame",
    "trades_frame",
    "unit",
]

OHLC_SCHEMA = pl.Schema(schema_for(DataType.OHLC))
TRADES_SCHEMA = pl.Schema(schema_for(DataType.TRADES))


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by ``parts`` (the seed and what is drawn)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def seeded_bar(
    seed: object,
    span: int,
    ts: int,
    *,
    base_price: float,
    decimals: int,
    hole_rate: float,
    price_key: tuple[int, ...],
) -> tuple[float, float, float, float] | None:
    """``(open, high, low, close)`` of the bar opening at ``ts`` on a ``span`` grid (same
    unit for both), or None for a hole (no trade in the bar).

    ``price_key`` is what the price draws hash besides the seed (the fakes grew apart
    here: ``(ts,)`` or ``(span, ts)``; kept so their data stay as the tests know them).
    """
    if unit(seed, "hole", span, ts) < hole_rate:
        return None
    base = base_price * (1 + 0.05 * (unit(seed, "drift", span, ts // (span * 50)) - 0.5))
    o = round(base * (1 + 0.01 * (unit(seed, "o", *price_key) - 0.5)), decimals)
    c = round(base * (1 + 0.01 * (unit(seed, "c", *price_key) - 0.5)), decimals)
    h = round(max(o, c) * (1 + 0.002 * unit(seed, "h", *price_key)), decimals)
    lo = round(min(o, c) * (1 - 0.002 * unit(seed, "l", *price_key)), decimals)
    return o, h, lo, c


# -- candles as decimal strings on a ms grid (Bybit, OKX) -----------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """One candle as the wire sends it (decimal strings), ``ts_ms`` = open time."""

    ts_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str


@dataclass(frozen=True, slots=True)
class SeededCandles:
    """Candles of one market: deterministic, with ~3% holes (no trading in the bar)."""

    seed: str
    base_price: float = 40_000.0
    hole_rate: float = 0.03

    def bar(self, ts_ms: int, span_ms: int) -> Bar | None:
        """The bar opening at ``ts_ms`` or None for a hole."""
        prices = seeded_bar(
            self.seed, span_ms, ts_ms, base_price=self.base_price, decimals=1,
            hole_rate=self.hole_rate, price_key=(ts_ms,),
        )  # fmt: skip
        if prices is None:
            return None
        o, h, lo, c = prices
        v = round(1 + 100 * unit(self.seed, "v", span_ms, ts_ms), 4)
        q = round(v * (o + c) / 2, 4)
        return Bar(ts_ms, str(o), str(h), str(lo), str(c), str(v), str(q))

    def bars(self, start_ms: int, end_ms: int, span_ms: int, offset_ms: int = 0) -> list[Bar]:
        """Bars opening in ``[start_ms, end_ms)`` on the grid ``offset + k*span``, oldest first."""
        first = start_ms - (start_ms - offset_ms) % span_ms
        if first < start_ms:
            first += span_ms
        bars = (self.bar(ts, span_ms) for ts in range(first, end_ms, span_ms))
        return [bar for bar in bars if bar is not None]


def bars_frame(bars: Sequence[Bar]) -> pl.DataFrame:
    """Decimal-string bars as the store's ohlc rows (no trade counts on these wires)."""
    return ohlc_frame(
        ts=[b.ts_ms * 1_000_000 for b in bars],
        open=[float(b.open) for b in bars],
        high=[float(b.high) for b in bars],
        low=[float(b.low) for b in bars],
        close=[float(b.close) for b in bars],
        volume=[float(b.volume) for b in bars],
        quote_volume=[float(b.quote_volume) for b in bars],
    )


# -- candles as cent floats on a second grid (Coinbase, Kraken) ----------------------------


@dataclass(frozen=True, slots=True)
class CentBar:
    """One candle; prices rounded to cents, volume to 1e-8 (as the wire sends them)."""

    ts_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    count: int


def bar_at(seed: str, ts_s: int, span_s: int, hole_rate: float = 0.03) -> CentBar | None:
    """The bar opening at ``ts_s`` or None (no trading in that bar)."""
    prices = seeded_bar(
        seed, span_s, ts_s, base_price=40_000.0, decimals=2, hole_rate=hole_rate,
        price_key=(span_s, ts_s),
    )  # fmt: skip
    if prices is None:
        return None
    o, h, lo, c = prices
    v = round(0.5 + 50 * unit(seed, "v", span_s, ts_s), 8)
    vwap = round((o + c + h + lo) / 4, 1)
    return CentBar(ts_s, o, h, lo, c, v, vwap, 1 + int(200 * unit(seed, "n", span_s, ts_s)))


def cent_bars_frame(bars: Sequence[CentBar], *, with_counts: bool) -> pl.DataFrame:
    """Cent bars as the store's ohlc rows; ``with_counts``: the wire also carries the
    vwap (quote volume = vwap x volume) and the trade count (Kraken, not Coinbase)."""
    return ohlc_frame(
        ts=[b.ts_s * 10**9 for b in bars],
        open=[b.open for b in bars],
        high=[b.high for b in bars],
        low=[b.low for b in bars],
        close=[b.close for b in bars],
        volume=[b.volume for b in bars],
        quote_volume=[b.vwap * b.volume for b in bars] if with_counts else None,
        trades=[b.count for b in bars] if with_counts else None,
    )


# -- trade tapes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade as the wire sends it."""

    ts_ms: int
    trade_id: int
    price: str
    size: str
    side: str  # taker side, "buy" / "sell"


@dataclass
class SeededTape:
    """``count`` trades from ``start_ms``, ids consecutive from ``first_id``, oldest first.

    Every ~20th trade opens a burst of 2-40 trades in the same ms, and the trade at
    ``big_burst_at`` opens a burst of ``big_burst`` trades (more than two pages).
    """

    seed: int
    start_ms: int
    count: int = 1_500
    first_id: int = 400_000_000
    base_price: float = 40_000.0
    big_burst: int = 230
    big_burst_at: int = 700
    size_decimals: int = 4
    trades: list[Trade] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        trades: list[Trade] = []
        ts = self.start_ms
        burst_left = 0
        price = self.base_price
        for i in range(self.count):
            if i == self.big_burst_at:
                burst_left = self.big_burst
            elif burst_left == 0 and rng.random() < 0.05:
                burst_left = rng.randint(2, 40)
            if burst_left:
                burst_left -= 1
            elif i:
                ts += rng.randint(1, 9_000)
            price = round(price * (1 + rng.uniform(-0.0005, 0.0005)), 1)
            if self.size_decimals:
                size = str(round(rng.uniform(0.0001, 2), self.size_decimals) or 1.0)
            else:  # contracts
                size = str(rng.randint(1, 50))
            side = "buy" if rng.random() < 0.5 else "sell"
            trades.append(Trade(ts, self.first_id + i, str(price), size, side))
        self.trades = trades

    @property
    def end_ms(self) -> int:
        """One ms past the last trade."""
        return self.trades[-1].ts_ms + 1

    def busiest_ms(self) -> int:
        """The ms holding the most trades (the big burst)."""
        return self.trades[self.big_burst_at].ts_ms

    def between(self, start_ms: int, end_ms: int) -> list[Trade]:
        """Trades with ``start_ms <= ts < end_ms``, oldest first."""
        return [t for t in self.trades if start_ms <= t.ts_ms < end_ms]


#: ``(trade_id, ts_us, price, amount, taker_buys)``
TapeRow = tuple[int, int, float, float, bool]


@dataclass(frozen=True, slots=True)
class Tape:
    """``n`` trades from ``start_us`` on: ids ``first_id``..; ts in microseconds.

    ``bursts`` maps a trade index to a burst size: that many trades share one
    microsecond, starting at the index (put one across each page boundary you test).
    ``max_gap_us`` bounds the pause between groups (3 s for history tapes; a few ms for
    the live tapes the streaming fakes play in real time).
    """

    seed: str
    start_us: int
    n: int
    first_id: int = 1
    bursts: tuple[tuple[int, int], ...] = ()
    max_gap_us: int = 3_000_000

    def rows(self) -> list[TapeRow]:
        """``(trade_id, ts_us, price, amount, taker_buys)`` oldest first."""
        rng = random.Random(self.seed)
        burst_at = dict(self.bursts)
        out: list[TapeRow] = []
        ts = self.start_us
        i = 0
        while i < self.n:
            size = 1 if rng.random() < 0.8 else rng.randint(2, 6)
            if i in burst_at:
                size = burst_at[i]
            else:  # land exactly on the next burst
                nxt = min((b for b in burst_at if b > i), default=self.n)
                size = min(size, nxt - i)
            for _ in range(min(size, self.n - i)):
                price = round(40_000 + 500 * (rng.random() - 0.5), 2)
                amount = round(rng.uniform(0.0001, 2.0), 8)
                out.append((self.first_id + i, ts, price, amount, rng.random() < 0.5))
                i += 1
            ts += rng.randint(1, self.max_gap_us)  # up to 3 s between groups by default
        return out


TapeMarketT = TypeVar("TapeMarketT", bound="TapeMarket")


@dataclass
class TapeMarket:
    """``Tape``s of the markets ``MARKETS`` names, replayed as history or live.

    A REST fake subclasses it and sets its defaults; its streaming twin passes
    ``clock_us`` (live mode: a trade exists once that clock reaches it) and opens the
    market with ``restart_tapes`` when the first client connects.
    """

    MARKETS: ClassVar[tuple[str, ...]] = ()

    seed: str = "market"
    n_trades: int = 1_000
    #: same-µs bursts: (trade index, size)
    bursts: tuple[tuple[int, int], ...] = ()
    start_us: int = 0
    max_gap_us: int = 3_000_000
    #: Live mode (the streaming fake): a trade exists once this clock (µs) reaches it.
    clock_us: Callable[[], int] | None = None

    def __post_init__(self) -> None:
        self.tapes = {
            market: Tape(f"{self.seed}:{market}", self.start_us, self.n_trades, first_id=1,
                         bursts=self.bursts, max_gap_us=self.max_gap_us).rows()
            for market in self.MARKETS
        }  # fmt: skip
        self._tape_ts = {m: [r[1] for r in tape] for m, tape in self.tapes.items()}

    def restart_tapes(self, start_us: int, n_trades: int | None = None) -> None:
        """Regenerate the tapes from ``start_us`` (a streaming fake opens its market
        when the first client connects, so the test's startup time does not matter)."""
        self.start_us = start_us
        if n_trades is not None:
            self.n_trades = n_trades
        self.__post_init__()

    def existing(self, market: str) -> list[TapeRow]:
        """The tape of ``market`` up to now (all of it unless in live mode)."""
        tape = self.tapes[market]
        if self.clock_us is None:
            return tape
        return tape[: bisect.bisect_right(self._tape_ts[market], self.clock_us())]

    def after_ts(self, market: str, ts_us: int) -> int:
        """The index of the first trade of ``market`` later than ``ts_us``."""
        return bisect.bisect_right(self._tape_ts[market], ts_us)

    def tape_truth(self, market: str, start: int, end: int) -> pl.DataFrame:
        """The trades of ``market`` with ``start <= ts < end`` (ns), trades schema."""
        return tape_frame([r for r in self.tapes[market] if start <= r[1] * 1_000 < end])


def now_us() -> int:
    """The wall clock in µs (the live tapes' clock)."""
    return time.time_ns() // 1_000


@dataclass
class LiveTapeFeed(WsFake):
    """The base of a streaming fake over a ``TapeMarket`` played live (``rest``, which also
    serves the REST endpoints a stream heals from): the market opens at the first
    connection, ~1.6 trades a ms, a trade existing once the wall clock reaches it."""

    seed: int = 7
    n_trades: int = 10_000  # ~6 s of market at ~1.6 trades/ms
    skip_rate: float = 0.0  # share of trade messages silently not sent
    book_interval_s: float = 0.005
    heartbeat_s: float = 1.0
    skipped: list[int] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    updates: int = 0
    market_open: bool = False

    def live_market(
        self, rest: type[TapeMarketT], name: str, bursts: tuple[tuple[int, int], ...]
    ) -> TapeMarketT:
        """``rest`` in live mode, its tapes made when the market opens."""
        self._last_book_us = 0
        return rest(
            seed=f"{name}-live-{self.seed}",
            n_trades=0,  # the tapes are made when the market opens
            bursts=bursts,
            start_us=now_us() + 3_600_000_000,  # opens at the first connection
            max_gap_us=2_000,
            clock_us=now_us,
        )

    def open_market(self, rest: TapeMarket) -> None:
        """At the first connection: the tapes start 20 ms from now."""
        if not self.market_open:
            self.market_open = True
            rest.restart_tapes(now_us() + 20_000, self.n_trades)

    def book_stamp_us(self) -> int:
        """The time (µs) of a book update: the clock, strictly after the previous one."""
        self._last_book_us = max(now_us(), self._last_book_us + 1)
        return self._last_book_us


def tape_frame(rows: Sequence[TapeRow]) -> pl.DataFrame:
    """``Tape`` rows as the store's trades (µs -> ns, the taker's side)."""
    return trades_frame(
        ts=[r[1] * 1_000 for r in rows],
        trade_id=[str(r[0]) for r in rows],
        price=[r[2] for r in rows],
        amount=[r[3] for r in rows],
        side=["buy" if r[4] else "sell" for r in rows],
    )


# -- a market on the wall clock (the streaming fakes of Binance, Bybit, OKX) ------------------

#: (bids, asks), best first, of (price, amount)
Book = tuple[list[tuple[float, float]], list[tuple[float, float]]]


@dataclass
class ClockMarket:
    """Trade ``i`` happens at ``t0_ms + i // per_ms`` (``trade(i)`` is its wire record), so
    the truth of any stretch is known; a level book stepped by update id, each state
    kept in ``book_history[update_id]``. A subclass writes the wire format."""

    per_ms: int = 1
    t0_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    rest_requests: int = 0
    subscriptions: list[Any] = field(default_factory=list)
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    update_id: int = 1000
    book_history: dict[int, Book] = field(default_factory=dict)

    def seed_book(
        self, levels: int, tick: float, decimals: int, size: Callable[[int], float] = float,
        ask_offset: int = 0,
    ) -> None:  # fmt: skip
        """The opening book around 100: level ``k`` at ``100 -/+ k * tick`` holds
        ``size(k)`` (asks ``size(k + ask_offset)``); recorded as update ``update_id``."""
        for k in range(1, levels):
            self.bids[round(100.0 - k * tick, decimals)] = size(k)
            self.asks[round(100.0 + k * tick, decimals)] = size(k + ask_offset)
        self._record()

    def trade(self, i: int) -> dict[str, Any]:
        """Trade ``i`` as the exchange sends it."""
        raise NotImplementedError

    def now_index(self) -> int:
        """Index of the first trade that does not exist yet."""
        return max(0, (int(time.time() * 1000) - self.t0_ms + 1) * self.per_ms)

    def truth(self, first: int, last: int) -> list[dict[str, Any]]:
        """Trades ``first..last`` (indexes, inclusive)."""
        return [self.trade(i) for i in range(first, last + 1)]

    def _record(self, depth: int | None = 50, scale: float | None = None) -> None:
        """Keep the book after ``update_id`` (top ``depth`` levels, sizes times ``scale``)."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        if scale is not None:
            bids, asks = [(p, q * scale) for p, q in bids], [(p, q * scale) for p, q in asks]
        self.book_history[self.update_id] = (bids, asks)


# -- per-second tapes (Bitfinex, BitMEX) -----------------------------------------------------


@dataclass
class SecondsMarket:
    """A market whose trades are drawn second by second (``second_stamps``) between
    ``first_ms`` and ``last_ms`` (inclusive): Bitfinex and BitMEX. ``bursts`` adds
    ``{ms: count}`` trades sharing one ms; ``density`` multiplies the trades a second
    (streams want a busy market); every ``quiet_every``-th minute has no trade."""

    first_ms: int
    last_ms: int
    seed: int = 7
    bursts: dict[int, int] = field(default_factory=dict)
    density: int = 1
    quiet_every: int = 13
    requests: list[str] = field(default_factory=list)

    @classmethod
    def around_now(cls, **kwargs: Any) -> Self:
        """A market from ten minutes ago to an hour ahead (what a streaming fake plays)."""
        now_ms = time.time_ns() // 1_000_000
        return cls(first_ms=now_ms - 600_000, last_ms=now_ms + 3_600_000, **kwargs)


def second_stamps(
    rng: random.Random, sec: int, *, counts: Sequence[int], cluster_max: int,
    density: int = 1, min_count: int = 0,
) -> list[int]:  # fmt: skip
    """The ms stamps of second ``sec``'s trades, sorted: ``counts`` draws how many (at
    least ``min_count``, times ``density``); 4 seconds in 10 end with a cluster of 2 to
    ``cluster_max`` fills of one order in one ms (the same-ms runs pages must survive)."""
    n = max(rng.choice(counts), min_count) * density
    stamps = sorted(sec * 1000 + rng.randrange(1000) for _ in range(n))
    if stamps and rng.random() < 0.4:
        stamps += [stamps[-1]] * rng.randint(2, cluster_max)
    return stamps


def burst_stamps(bursts: dict[int, int], sec: int) -> list[int]:
    """The ms stamps a test's ``bursts`` (``{ms: count}``) put in second ``sec``."""
    return [ms for ms, count in bursts.items() if ms // 1000 == sec for _ in range(count)]


# -- truth in the store's schemas -----------------------------------------------------------


def ohlc_frame(
    *,
    ts: Sequence[int],
    open: Sequence[float],
    high: Sequence[float],
    low: Sequence[float],
    close: Sequence[float],
    volume: Sequence[float],
    quote_volume: Sequence[float | None] | None = None,
    trades: Sequence[int | None] | None = None,
) -> pl.DataFrame:
    """Truth candles in the ohlc schema; a column a wire does not carry is left null."""
    nulls = [None] * len(ts)
    columns = {
        "ts": ts, "open": open, "high": high, "low": low, "close": close, "volume": volume,
        "quote_volume": nulls if quote_volume is None else quote_volume,
        "trades": nulls if trades is None else trades,
    }  # fmt: skip
    return pl.DataFrame(columns, schema=OHLC_SCHEMA)


def trades_frame(
    *,
    ts: Sequence[int],
    trade_id: Sequence[str],
    price: Sequence[float],
    amount: Sequence[float],
    side: Sequence[str],
) -> pl.DataFrame:
    """Truth trades in the trades schema."""
    columns = {"ts": ts, "trade_id": trade_id, "price": price, "amount": amount, "side": side}
    return pl.DataFrame(columns, schema=TRADES_SCHEMA)
