"""What a WebSocket connection is told and what it tells: its policy, its markers, its state.

Its own module so the records a caller builds (``WsConfig``) and reads (``Connected``,
``WsStatus``) can be imported without the client, and the backoff rule reads on its
own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DEFAULT_WS_CONFIG", "Connected", "WsConfig", "WsStatus", "full_jitter_s"]


@dataclass(frozen=True, slots=True)
class WsConfig:
    """Connection policy; defaults suit the public exchanges."""

    open_timeout_s: float = 10.0
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    idle_timeout_s: float = 60.0
    max_session_s: float | None = None
    #: Reconnect this long before ``max_session_s`` (Binance: 24 h - 10 min).
    session_margin_s: float = 600.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_attempts: int = 30
    #: Frames held before the reader waits for the consumer (backpressure).
    max_pending: int = 500_000


DEFAULT_WS_CONFIG = WsConfig()


@dataclass(frozen=True, slots=True)
class Connected:
    """Marker: a (re)connect succeeded; frames after it belong to the new session."""

    session: int
    reconnects: int
    reason: str = ""
    #: when the session opened (ns since the epoch): where a stream-only type's gap ends
    at_ns: int = 0


@dataclass(frozen=True, slots=True)
class WsStatus:
    """The connection's state at one moment (see :meth:`WsClient.status`).

    ``event`` names the change that produced it: ``connected``, ``lost`` (a session
    ended), ``failed`` (a connection attempt failed) or ``""`` (asked for).
    """

    url: str
    connected: bool
    #: Consecutive failed connection attempts since the last session (0 while connected).
    attempts: int
    last_error: str
    #: Seconds until the next attempt (None: connected, or trying right now).
    retry_in_s: float | None
    #: Seconds since the connection went down, or since the start if it never came up.
    down_s: float | None
    sessions: int
    reconnects: int
    frames: int
    event: str = ""


def full_jitter_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """AWS "full jitter": a uniform wait in ``[0, min(cap, base * 2**attempt)]``."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** min(attempt, 30))))
