"""Markets drawn second by second (Bitfinex, BitMEX): the stamps of a second's trades."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

__all__ = [
    "SecondsMarket",
    "burst_stamps",
    "second_stamps",
]


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
