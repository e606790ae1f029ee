"""One request budget per exchange and egress IP, shared by every process and machine.

An exchange meters its budget per IP (Binance: 6000 weight a minute), not per process. A
``WeightLimiter`` paces only its own process, so four workers backfilling Binance from
one IP spend four budgets and earn 429s, then a ban. ``SharedWeightLimiter`` keeps the
token bucket in PostgreSQL instead: one row per bucket, keyed by exchange and egress
(``binance@host-1``), taken from by a function that runs atomically in the database:

1. lock the row, refill it by the time elapsed since it was last touched (the database's
   clock, so machines with skewed clocks agree);
2. apply a block a caller reports (the exchange's usage header near its limit, or a
   429/418 ``Retry-After``): no token accrues before the block ends;
3. take the request's weight, possibly into debt, and return how long the caller must
   wait before sending: the block still to run plus the debt at the refill rate.

A reservation, not a retry loop: one round trip per request (two when it had to wait:
before sending, it checks no block began meanwhile), and callers queue in the order
they asked. The usage header (``observe``) and the client's 429/418 pauses
(``pause``) still work as in ``WeightLimiter``; the block they set is carried to the
shared row by this process's next ``acquire``, so every worker on the egress waits.

Configured by ``DCCD_RATE_BUDGET_URL`` (a ``postgresql://`` URL; the egress id is
``DCCD_EGRESS``, default the host name): see ``budget_limiter``. psycopg is imported only
then (``pip install 'dccd[deploy]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from typing import Any

from dccd_core.domain import ConfigError

from .limiter import WeightLimiter

__all__ = [
    "BUDGET_URL_ENV",
    "EGRESS_ENV",
    "SharedWeightLimiter",
    "bucket_name",
    "budget_limiter",
    "redact",
]

log = logging.getLogger("dccd.transport")

BUDGET_URL_ENV = "DCCD_RATE_BUDGET_URL"
EGRESS_ENV = "DCCD_EGRESS"

_SCHEMA_LOCK = 0x0DCC_D0B0  # advisory lock id: concurrent first callers create it once

#: The table and the function that takes from it (see the module docstring). Times are
#: epoch seconds of the database's clock; ``tokens`` may be negative (requests reserved).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dccd_rate_budget (
    bucket text PRIMARY KEY,
    tokens double precision NOT NULL,
    at double precision NOT NULL
);
CREATE OR REPLACE FUNCTION dccd_rate_take(
    p_bucket text, p_weight double precision, p_capacity double precision,
    p_rate double precision, p_block_s double precision
) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE
    v_now double precision;
    v_tokens double precision;
    v_at double precision;
BEGIN
    INSERT INTO dccd_rate_budget (bucket, tokens, at)
        VALUES (p_bucket, p_capacity, extract(epoch FROM clock_timestamp()))
        ON CONFLICT (bucket) DO NOTHING;
    SELECT tokens, at INTO v_tokens, v_at FROM dccd_rate_budget
        WHERE bucket = p_bucket FOR UPDATE;
    v_now := extract(epoch FROM clock_timestamp());  -- once the row is ours
    IF v_at < v_now THEN
        v_tokens := least(p_capacity, v_tokens + (v_now - v_at) * p_rate);
        v_at := v_now;
    END IF;
    IF v_now + p_block_s > v_at THEN
        v_tokens := least(v_tokens, 0);
        v_at := v_now + p_block_s;
    END IF;
    v_tokens := v_tokens - p_weight;
    UPDATE dccd_rate_budget SET tokens = v_tokens, at = v_at WHERE bucket = p_bucket;
    RETURN (v_at - v_now) + greatest(0, -v_tokens) / p_rate;
END $$;
"""


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def bucket_name(exchange: str, scope: str = "") -> str:
    """The shared bucket of ``exchange`` from this egress: ``binance@host-1`` (``scope``, a
    host metered apart, is appended: ``binance@host-1 https://fapi.binance.com``)."""
    egress = os.environ.get(EGRESS_ENV) or socket.gethostname()
    return f"{exchange}@{egress}" + (f" {scope}" if scope else "")


def budget_limiter(
    exchange: str,
    weight_per_minute: int,
    *,
    usage_header: str | None = None,
    scope: str = "",
) -> WeightLimiter:
    """The limiter for ``exchange``: shared when ``DCCD_RATE_BUDGET_URL`` is set, else the
    per-process ``WeightLimiter``."""
    url = os.environ.get(BUDGET_URL_ENV, "").strip()
    if not url:
        return WeightLimiter(weight_per_minute, usage_header=usage_header)
    return SharedWeightLimiter(
        url, bucket_name(exchange, scope), weight_per_minute, usage_header=usage_header
    )


class SharedWeightLimiter(WeightLimiter):
    """A ``WeightLimiter`` whose bucket is a row in PostgreSQL (module docstring).

    One connection per limiter, opened by the first ``acquire`` (on the running event
    loop); ``aclose`` closes it. If the database cannot be reached at first, that is a
    configuration mistake (``ConfigError`` before any request); if it goes away later,
    the limiter says so once and paces this process alone (the usage header still
    guards the exchange's limit).
    """

    def __init__(
        self,
        url: str,
        bucket: str,
        weight_per_minute: int,
        *,
        usage_header: str | None = None,
        safety: float = 0.9,
        window_s: float = 60.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                f"{BUDGET_URL_ENV}={redact(url)!r} is not a PostgreSQL URL: give "
                "postgresql://user:password@host:5432/database, or unset it to pace each "
                "process on its own"
            )
        try:
            import psycopg  # noqa: F401  (lazily: only deployments with a shared budget)
        except ImportError as exc:
            raise ConfigError(
                f"{BUDGET_URL_ENV} is set but psycopg is not installed: "
                "pip install 'dccd[deploy]' (or psycopg[binary])"
            ) from exc
        super().__init__(
            weight_per_minute, usage_header=usage_header, safety=safety, window_s=window_s
        )
        self.url = url
        self.bucket = bucket
        self.connect_timeout_s = connect_timeout_s
        self._conn: Any = None
        self._conn_loop: asyncio.AbstractEventLoop | None = None
        self._connect_lock = asyncio.Lock()
        self._connected_once = False
        self._local = False  # the database went away: pace this process alone
        #: round trips to the shared bucket (for tests and benches).
        self.takes = 0

    # -- the connection ----------------------------------------------------------

    async def _connection(self) -> Any:
        loop = asyncio.get_running_loop()
        async with self._connect_lock:
            if self._conn is not None and self._conn_loop is loop and not self._conn.closed:
                return self._conn
            import psycopg

            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout_s))
            )
            try:
                await conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
                try:
                    await conn.execute(_SCHEMA)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
            except BaseException:
                await conn.close()
                raise
            self._conn, self._conn_loop = conn, loop
            self._connected_once = True
            return conn

    async def _take(self, weight: float, block_s: float) -> float:
        conn = await self._connection()
        cursor = await conn.execute(
            "SELECT dccd_rate_take(%s, %s, %s, %s, %s)",
            (self.bucket, weight, self._capacity, self._rate_per_s, block_s),
        )
        row = await cursor.fetchone()
        self.takes += 1
        return float(row[0]) if row is not None else 0.0

    # -- the limiter ---------------------------------------------------------------

    async def acquire(self, weight: int = 1) -> None:
        """Reserve ``weight`` in the shared bucket, then wait the time it says."""
        if self._local:
            await super().acquire(weight)
            return
        block_s = max(0.0, self._blocked_until - self._clock())
        try:
            wait = await self._take(float(weight), block_s)
        except Exception as exc:
            if not self._connected_once:
                raise ConfigError(
                    f"cannot use the shared rate budget at {redact(self.url)} "
                    f"({type(exc).__name__}: {exc}); check {BUDGET_URL_ENV} or unset it "
                    "to pace each process on its own"
                ) from exc
            log.warning(
                "the shared rate budget %s is unreachable (%s): pacing this process alone",
                self.bucket,
                exc,
            )
            self._local = True
            await super().acquire(weight)
            return
        if wait > 0:
            self.waited_s += wait
            await self._sleep(wait)
            await self._await_block()

    async def _await_block(self) -> None:
        """After waiting its turn, a request checks no block began meanwhile (another
        worker read the usage header near the limit, or got a 429): reservations made
        before it must not all fire into the exchange's exhausted window."""
        try:
            conn = await self._connection()
            cursor = await conn.execute(
                "SELECT at - extract(epoch FROM clock_timestamp()) FROM dccd_rate_budget "
                "WHERE bucket = %s",
                (self.bucket,),
            )
            row = await cursor.fetchone()
        except Exception:  # the next acquire reports a database gone away
            return
        shared = float(row[0]) if row is not None else 0.0
        local = self._blocked_until - self._clock()
        block = max(shared, local)
        if block > 0:
            self.waited_s += block
            await self._sleep(block)

    async def pause(self, seconds: float) -> None:
        """Hold every process on this budget for ``seconds`` (a 429/418's Retry-After):
        written to the shared row now, not at this process's next request (which waits
        behind the client's own pause gate)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        if self._local:
            return
        with contextlib.suppress(Exception):  # unreachable: the next acquire reports it
            await self._take(0.0, seconds)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._conn_loop is asyncio.get_running_loop():
            await conn.close()
