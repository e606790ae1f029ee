"""The one boundary from websockets/OS errors into the dccd error tree.

A refused handshake with a 4xx (not 429) is an ``ExchangeError`` (retrying cannot fix
a bad URL), a bad URL a ``ConfigError``, anything else a ``RetryExhausted`` the client
retries. Its own module so the mapping is read and tested apart from the reader loop.
"""

from __future__ import annotations

import socket

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from dccd_core.domain import ConfigError, DccdError, ExchangeError, RetryExhausted

__all__ = ["map_ws_error", "short_url"]


def map_ws_error(exc: BaseException, url: str) -> DccdError:
    """The dccd error for a websockets/OS error met while connected to ``url``."""
    if isinstance(exc, InvalidURI):
        return ConfigError(f"invalid WebSocket URL {url!r}: {exc}")
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if 400 <= status < 500 and status != 429:
            return ExchangeError(
                f"WebSocket handshake to {url} refused with HTTP {status}; "
                "check the ws_url and the subscribed symbols"
            )
        return RetryExhausted(f"WebSocket handshake HTTP {status}")
    if isinstance(exc, InvalidHandshake):
        return RetryExhausted(f"WebSocket handshake failed: {exc}")
    if isinstance(exc, ConnectionClosed):
        return RetryExhausted(f"connection closed: {exc}")
    where = short_url(url)
    if isinstance(exc, TimeoutError):
        return RetryExhausted(f"timed out connecting to {where}")
    if isinstance(exc, ConnectionRefusedError):
        return RetryExhausted(f"connection refused by {where}")
    if isinstance(exc, socket.gaierror):
        return RetryExhausted(f"cannot resolve the host of {where} ({exc.strerror or exc})")
    if isinstance(exc, OSError) and exc.strerror:
        return RetryExhausted(f"{exc.strerror.lower()} ({where})")
    return RetryExhausted(f"{type(exc).__name__}: {exc} ({where})")


def short_url(url: str) -> str:
    """``ws://host:port/...``: the origin, without a path that lists every stream."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}/..." if slash and path else url
