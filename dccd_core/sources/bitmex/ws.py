"""BitMEX WebSocket hooks (filled in below the REST part)."""

from __future__ import annotations

from dccd_core.sources.ws import WsSource

from .parse import ContractSpec

__all__ = ["BitmexWs"]


class BitmexWs(WsSource):
    """Streaming hooks of the BitMEX realtime API."""

    def __init__(self) -> None:
        self.instruments: dict[str, tuple[str, ContractSpec]] | None = None
