"""Bitfinex WebSocket v2 hooks (filled in below the REST part)."""

from __future__ import annotations

from dccd_core.sources.ws import WsSource

__all__ = ["BitfinexWs"]


class BitfinexWs(WsSource):
    """Streaming hooks of Bitfinex WebSocket v2."""

    def __init__(self) -> None:
        self._channels: dict[int, tuple[str, str]] = {}
