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
* ``TapeMarket`` holds the tapes of a REST fake and plays them live (``LiveTapeFeed``,
  the base of the Coinbase and Kraken streaming fakes).
* ``SecondsMarket`` (Bitfinex, BitMEX) draws each second's trades (``second_stamps``)
  between two instants; ``ClockMarket`` (the Binance, Bybit and OKX streaming fakes)
  puts trade ``i`` at ``t0 + i / per_ms`` and steps a level book, keeping its history.
* ``ohlc_frame`` / ``trades_frame`` turn truth columns into the store's schema.

Binance's lazily generated years of data (``tests.fakes.binance.MarketData``, numpy,
hash per bar and per trade) keep their own arithmetic: a year of 1m bars or 10M trades
must cost nothing until asked for, which the per-bar Python model here cannot do.

Modules: ``bars`` (the bar model and its wire shapes), ``tapes`` (trade tapes, history
or live), ``clock`` (a market on the wall clock), ``seconds`` (per-second markets),
``frames`` (truth in the store's schemas).
"""

from __future__ import annotations

from tests.fakes.market.bars import (
    Bar,
    CentBar,
    SeededCandles,
    bar_at,
    bars_frame,
    cent_bars_frame,
    seeded_bar,
    unit,
)
from tests.fakes.market.clock import Book, ClockMarket
from tests.fakes.market.frames import OHLC_SCHEMA, TRADES_SCHEMA, ohlc_frame, trades_frame
from tests.fakes.market.seconds import SecondsMarket, burst_stamps, second_stamps
from tests.fakes.market.tapes import (
    LiveTapeFeed,
    SeededTape,
    Tape,
    TapeMarket,
    TapeRow,
    Trade,
    now_us,
    tape_frame,
)

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
