"""The request side of one fixed-time-window page of a derivatives series (funding,
mark and index candles, open interest).

Why one module: these endpoints all take the window ``[start_ts, end_ts)`` as two ms
bounds, serve perpetuals only and (open interest) a fixed set of periods; every exchange
module said so in its own lines. A page method is then build -> ``Source._get`` -> parse;
the paginator clips the rows to ``[start_ts, end_ts)``.
"""

from __future__ import annotations

from collections.abc import Collection

from dccd_core.domain import Span, errors

from .columns import ceil_ms

__all__ = ["exclusive_ms", "inclusive_ms", "require_period", "require_perpetual"]


def inclusive_ms(
    start_ts: int, end_ts: int, names: tuple[str, str] = ("startTime", "endTime")
) -> dict[str, str]:
    """``[start_ts, end_ts)`` as the inclusive ms bounds ``names`` (Binance, Bybit)."""
    first, last = names
    return {first: str(ceil_ms(start_ts)), last: str(ceil_ms(end_ts) - 1)}


def exclusive_ms(start_ts: int, end_ts: int) -> dict[str, str]:
    """``[start_ts, end_ts)`` as OKX's exclusive bounds: ``before`` the ms just before
    the window, ``after`` its end."""
    return {"before": str(ceil_ms(start_ts) - 1), "after": str(ceil_ms(end_ts))}


def require_perpetual(is_perpetual: bool, refusal: str) -> None:
    """Refuse (``NoCapability``, before any request) a symbol that is no perpetual."""
    if not is_perpetual:
        raise errors.NoCapability(refusal)


def require_period(span: Span, periods: Collection[Span], exchange: str) -> None:
    """Refuse an open-interest period the exchange does not sample."""
    if span not in periods:
        listed = " ".join(s.label for s in periods)
        raise errors.NoCapability(
            f"{exchange} has no {span} open interest: its periods are {listed}"
        )
