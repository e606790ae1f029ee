"""Seeded trade tapes with same-time bursts, replayed as history or live."""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import polars as pl

from tests.fakes.market.frames import trades_frame
from tests.fakes.ws import WsFake

__all__ = [
    "LiveTapeFeed",
    "SeededTape",
    "Tape",
    "TapeMarket",
    "TapeRow",
    "Trade",
    "now_us",
    "tape_frame",
]


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
