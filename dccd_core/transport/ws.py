"""A reconnecting WebSocket client: the one place dccd talks ``websockets``.

Why its own module: exchanges drop streams all the time (Binance closes every
connection after 24 h, servers restart, NATs time out), and a stream must come back
on its own and *say* that it did, so the caller can heal the gap from REST.

* Every (re)connect puts a :class:`Connected` marker in the frame sequence before
  the first frame of the new session; the caller heals the gap when it sees it.
* Backoff with full jitter (``uniform(0, min(cap, base * 2**attempt))``) between
  failed attempts; ``max_attempts`` consecutive failures raise ``RetryExhausted``.
* Protocol pings (``ping_interval_s``/``ping_timeout_s``, answered by websockets) and
  an optional app-level ping (OKX ``"ping"``, Bybit ``{"op":"ping"}``).
* Silence longer than ``idle_timeout_s`` is treated as a dead connection.
* ``max_session_s``: reconnect proactively before the exchange's forced disconnect.
* websockets/OS errors are mapped into the dccd tree here and nowhere else: a refused
  handshake with a 4xx (not 429) is an ``ExchangeError`` (retrying cannot fix a bad
  URL), a bad URL a ``ConfigError``, anything else is retried.
* Reading is pull-based and cheap to wait on: :meth:`WsClient.wait` sleeps until a
  number of frames is pending (or a reconnect, or the reader's fatal error), so a
  consumer can take frames in large batches whatever their arrival pattern (an
  exchange sends a trade per frame, every few ms) instead of waking for each one.
* The connection state lives here, once: :meth:`WsClient.status` says whether a session
  is open, since when it is not, the consecutive failed attempts, the last error and
  the wait before the next attempt; ``on_status`` hears every change (connected,
  connection lost, attempt failed) the moment it happens, so a caller can say "not
  connected" at once instead of at its next report.

The records live in ``ws_config`` and the error mapping in ``ws_errors``; this module
is the client (names re-exported here as before).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    WebSocketException,
)

from dccd_core.domain import ConfigError, DccdError, ExchangeError, RetryExhausted

from .ws_config import DEFAULT_WS_CONFIG, Connected, WsConfig, WsStatus, full_jitter_s
from .ws_errors import map_ws_error, short_url

__all__ = [
    "DEFAULT_WS_CONFIG",
    "Connected",
    "WsClient",
    "WsConfig",
    "WsStatus",
    "full_jitter_s",
]

log = logging.getLogger("dccd.ws")
Frame = str | bytes
#: The idle deadline moves at most this often (see ``WsClient._session``).
_RESCHEDULE_S = 0.5
Outgoing = str | bytes | dict[str, Any]


def _encode(message: Outgoing) -> Frame:
    if isinstance(message, dict):
        return orjson.dumps(message).decode()
    return message


class WsClient:
    """Keeps one WebSocket subscription alive; read frames with :meth:`next_batch`.

    ``async with WsClient(url, subscribe=[...]) as ws: items = await ws.next_batch()``
    ``items`` holds frames (str/bytes) and :class:`Connected` markers in order.
    """

    def __init__(
        self,
        url: str,
        *,
        subscribe: Sequence[Outgoing] = (),
        app_ping: Outgoing | None = None,
        app_ping_interval_s: float = 20.0,
        config: WsConfig = DEFAULT_WS_CONFIG,
        seed: int | None = None,
        on_status: Callable[[WsStatus], None] | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"invalid WebSocket URL {url!r}: it must start with ws:// or wss://")
        self.url = url
        self.subscribe = list(subscribe)
        self.app_ping = app_ping
        self.app_ping_interval_s = app_ping_interval_s
        self.config = config
        self.reconnects = 0
        self.sessions = 0
        self.frames = 0
        self.last_error: str = ""
        self.connected = False
        self.attempts = 0
        self.on_status = on_status
        self._down_since: float | None = None  # loop time; None while connected
        self._retry_at: float | None = None
        self._rng = random.Random(seed)
        self._pending: collections.deque[Frame | Connected] = collections.deque()
        #: ``_ready`` is set once this many items are pending (see :meth:`wait`).
        self._wanted = 1
        #: Connected markers among the pending items.
        self._markers = 0
        #: Loop time (``time.monotonic``) the last frame arrived; None: none yet.
        self.last_frame_at: float | None = None
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._error: DccdError | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: ClientConnection | None = None
        self._closing = False
        self._kick = False

    async def __aenter__(self) -> WsClient:
        self._down_since = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._run(), name=f"ws-reader {self.url}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reading and close the connection (frames already received stay readable)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def reconnect(self, reason: str = "requested") -> None:
        """Drop the current connection; the reader reconnects (and resubscribes)."""
        self._kick = True
        self.last_error = reason
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    async def send(self, message: Outgoing) -> None:
        """Send on the current connection (dropped silently when disconnected)."""
        if self._conn is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._conn.send(_encode(message))

    async def next_batch(
        self, max_items: int = 10_000, timeout_s: float = 1.0
    ) -> list[Frame | Connected]:
        """Up to ``max_items`` pending items; waits at most ``timeout_s`` for the first.

        Raises the reader's fatal error (``RetryExhausted``, ``ExchangeError``) once the
        frames received before it are consumed.
        """
        if not self._pending:
            if self._error is not None:
                raise self._error
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait()
        pending = self._pending
        n = min(max_items, len(pending))
        batch = [pending.popleft() for _ in range(n)]
        if self._markers:
            self._markers = sum(1 for item in pending if isinstance(item, Connected))
        if len(pending) < self.config.max_pending // 2:
            self._drained.set()
        return batch

    @property
    def pending(self) -> int:
        """Items (frames and markers) received and not read yet."""
        return len(self._pending)

    def due(self, min_items: int) -> bool:
        """Should the consumer read now: ``min_items`` items pending, a (re)connect
        marker pending, or the reader failed for good?"""
        return len(self._pending) >= min_items or bool(self._markers) or self._error is not None

    async def wait(self, min_items: int, timeout_s: float) -> bool:
        """Wait until :meth:`due` (``min_items`` items pending, a reconnect or the
        reader's fatal error) or ``timeout_s`` passed; returns :meth:`due`.

        Reads nothing: a consumer that works per batch waits here for a batch worth the
        work (or for its own deadline) and then takes everything with
        :meth:`next_batch`; frames arriving one by one wake nobody until then.
        """
        if not self.due(min_items) and timeout_s > 0:
            self._wanted = max(1, min_items)
            self._ready.clear()
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        await self._ready.wait()
            finally:
                self._wanted = 1
        return self.due(min_items)

    def status(self, event: str = "") -> WsStatus:
        """The connection's state now (cheap: no I/O)."""
        now = asyncio.get_running_loop().time()
        retry_in = None
        if not self.connected and self._retry_at is not None:
            retry_in = max(0.0, self._retry_at - now)
        return WsStatus(
            url=self.url,
            connected=self.connected,
            attempts=self.attempts,
            last_error=self.last_error,
            retry_in_s=retry_in,
            down_s=None if self._down_since is None else now - self._down_since,
            sessions=self.sessions,
            reconnects=self.reconnects,
            frames=self.frames,
            event=event,
        )

    def _notify(self, event: str) -> None:
        if self.on_status is None:
            return
        try:
            self.on_status(self.status(event))
        except Exception:  # a reporting hook must never stop the connection
            log.exception("on_status callback failed")

    # -- the reader -------------------------------------------------------------------

    def _put(self, item: Frame | Connected) -> None:
        self._pending.append(item)
        if isinstance(item, Connected):
            self._markers += 1
        self._ready.set()

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            sessions = self.sessions
            try:
                await self._session()
                attempt = 0  # a session that ran resets the failure count
            except asyncio.CancelledError:
                raise
            except DccdError as exc:
                self._error = exc
                self._ready.set()
                return
            except (OSError, TimeoutError, WebSocketException) as exc:
                mapped = map_ws_error(exc, self.url)
                if isinstance(mapped, ExchangeError | ConfigError):
                    self._error = mapped
                    self._ready.set()
                    return
                self.last_error = str(mapped)
                lost = self.sessions != sessions  # it was connected: a loss, not a refusal
                attempt = 1 if lost else attempt + 1
                self.attempts = attempt
                if attempt > self.config.max_attempts:
                    self._error = RetryExhausted(
                        f"WebSocket {short_url(self.url)} failed {attempt - 1} times in a row "
                        f"(last: {self.last_error}); check the network or the ws_url"
                    )
                    self._ready.set()
                    return
                delay_s = full_jitter_s(
                    attempt, self.config.backoff_base_s, self.config.backoff_cap_s, self._rng
                )
                self._retry_at = asyncio.get_running_loop().time() + delay_s
                self._notify("lost" if lost else "failed")
                await asyncio.sleep(delay_s)
                self._retry_at = None
                continue
            if self._closing:
                return
            # The session ended normally (server close, idle, planned rotation): retry
            # at once, the next failure backs off.
            attempt = 1
            self._notify("lost")

    async def _session(self) -> None:
        cfg = self.config
        conn = await connect(
            self.url,
            open_timeout=cfg.open_timeout_s,
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_timeout_s,
            close_timeout=2,
            max_size=None,
            max_queue=1024,
            compression=None,
        )
        if self.sessions:
            self.reconnects += 1
        self._conn = conn
        self._kick = False
        pinger: asyncio.Task[None] | None = None
        try:
            for message in self.subscribe:
                await conn.send(_encode(message))
            self.sessions += 1
            self.connected = True
            self.attempts = 0
            self._down_since = None
            self._put(
                Connected(self.sessions - 1, self.reconnects, self.last_error, time.time_ns())
            )
            self._notify("connected")
            if self.app_ping is not None:
                pinger = asyncio.create_task(self._ping_loop(conn))
            loop = asyncio.get_running_loop()
            session_end = (
                loop.time() + max(1.0, cfg.max_session_s - cfg.session_margin_s)
                if cfg.max_session_s
                else None
            )
            pending = self._pending
            # Moving the idle deadline is a timer cancel + re-arm: per frame it cost ~3 us
            # (15% of the whole hot path at 50k msg/s), so it moves at most every
            # ``_RESCHEDULE_S``; silence is then detected after idle_timeout_s minus at
            # most that much.
            rescheduled = loop.time()
            try:
                async with asyncio.timeout(self._deadline(rescheduled, session_end)) as tm:
                    async for frame in conn:
                        pending.append(frame)
                        self.frames += 1
                        if len(pending) >= self._wanted:
                            self._ready.set()
                        now = self.last_frame_at = loop.time()
                        if now - rescheduled >= _RESCHEDULE_S:
                            rescheduled = now
                            tm.reschedule(self._deadline(now, session_end))
                        if len(pending) >= cfg.max_pending:
                            self._drained.clear()
                            await self._drained.wait()
            except TimeoutError:
                if session_end is not None and loop.time() >= session_end - 0.001:
                    self.last_error = "planned reconnect before the exchange's session limit"
                else:
                    self.last_error = f"no frame for {cfg.idle_timeout_s:.0f} s"
                return
            self.last_error = (
                "reconnect requested" if self._kick else f"server closed ({conn.close_code})"
            )
        finally:
            if pinger is not None:
                pinger.cancel()
            if self.connected and not self._closing:  # at close: as it was at the stop
                self.connected = False
                self._down_since = asyncio.get_running_loop().time()
            self._conn = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    def _deadline(self, now: float, session_end: float | None) -> float:
        idle = now + self.config.idle_timeout_s
        return idle if session_end is None else min(idle, session_end)

    async def _ping_loop(self, conn: ClientConnection) -> None:
        assert self.app_ping is not None
        frame = _encode(self.app_ping)
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.app_ping_interval_s)
                await conn.send(frame)
