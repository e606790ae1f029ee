"""WeightLimiter: token-bucket pacing and the usage-header brake (simulated clocks)."""

from __future__ import annotations

import pytest

from dccd_core.transport import WeightLimiter


class Clock:
    """A fake monotonic + wall clock whose sleep advances time instantly."""

    def __init__(self, wall: float = 1_000_000.0) -> None:
        self.t = 0.0
        self.wall0 = wall
        self.slept: list[float] = []

    def mono(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.wall0 + self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def _limiter(clock: Clock, per_minute: int = 600, **kwargs: object) -> WeightLimiter:
    return WeightLimiter(
        per_minute,
        clock=clock.mono,
        wall_clock=clock.wall,
        sleep=clock.sleep,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_bucket_paces_to_safety_times_the_budget() -> None:
    clock = Clock()
    limiter = _limiter(clock, 600, safety=0.9)  # 540 weight / 60 s = 9 weight/s
    for _ in range(100):
        await limiter.acquire(2)
    # 200 weight, a burst of 54 free, the rest at 9/s
    assert clock.t == pytest.approx((200 - 54) / 9, rel=0.02)


async def test_usage_header_near_limit_blocks_until_rollover() -> None:
    clock = Clock(wall=60 * 16_667 + 42.0)  # 42 s into a wall-clock minute
    limiter = _limiter(clock, 1000, usage_header="X-MBX-USED-WEIGHT-1M")
    await limiter.acquire(1)
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "850"})  # below 900: keep going
    await limiter.acquire(1)
    assert clock.t < 0.1
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "905"})
    await limiter.acquire(1)
    assert clock.t == pytest.approx(18.05, abs=0.1)  # the minute rolled over
    assert limiter.last_used_weight == 905


async def test_unreadable_or_missing_header_is_ignored() -> None:
    clock = Clock()
    limiter = _limiter(clock, usage_header="X-MBX-USED-WEIGHT-1M")
    limiter.observe({})
    limiter.observe({"X-MBX-USED-WEIGHT-1M": "lots"})
    await limiter.acquire(1)
    assert clock.t == 0.0


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        WeightLimiter(0)
    with pytest.raises(ValueError):
        WeightLimiter(10, safety=1.5)
