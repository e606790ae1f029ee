"""Exchange error tables: what a documented error code means for the next request.

Each native source declares, as data next to its request builders, the error codes its
exchange documents and what each one means to a client::

    ERRORS = ErrorTable.of({-1000: TRANSIENT, -1003: RATE_LIMIT, -1121: PERMANENT})

``transient``: the same request may succeed later (server busy, timeout, "unknown
outcome"), so it is retried with backoff. ``rate_limit``: the exchange asks us to slow
down, so every request to it waits (the HTTP client's shared pause gate). ``permanent``:
retrying cannot help (bad parameter, unknown symbol), so it fails at once with the
exchange's own message.

The HTTP client reads the table for every reply that carries an error body, whatever
its status: 5xx (Binance ``-1000`` with HTTP 500 is transient, Bitfinex ``10020`` with
HTTP 500 is permanent), 4xx (OKX ``50004`` with HTTP 400 is a timeout) and 200 (Kraken
and Bybit report errors inside a 200 body). A code that is not in the table keeps the
HTTP status's meaning: a 5xx is transient, a 4xx permanent, 429/418 a rate limit.

:func:`error_entries` knows the envelope shapes of the seven exchanges, so a table is
only codes: Binance/OKX ``{"code", "msg"}``, Bybit ``{"retCode", "retMsg"}``, Kraken
``{"error": ["EService:Busy"]}``, Bitfinex ``["error", 10020, "limit: invalid"]`` and
``{"error": "ERR_RATE_LIMIT"}``, BitMEX ``{"error": {"message", "name"}}``, Coinbase
``{"message"}``. A code is an exchange's number (as text) or, where the exchange has
none (Kraken, BitMEX, Coinbase), its error string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "PERMANENT",
    "RATE_LIMIT",
    "TRANSIENT",
    "ErrorTable",
    "Fault",
    "error_entries",
]


class Fault(StrEnum):
    """What an exchange error means for the next identical request."""

    TRANSIENT = "transient"
    RATE_LIMIT = "rate_limit"
    PERMANENT = "permanent"


TRANSIENT = Fault.TRANSIENT
RATE_LIMIT = Fault.RATE_LIMIT
PERMANENT = Fault.PERMANENT

_SUCCESS_CODES = frozenset({"0", "", "None"})


@dataclass(frozen=True, slots=True)
class ErrorTable:
    """One exchange's documented error codes (as text) and their :class:`Fault`.

    ``rate_limit_pause_s``: how long a rate-limit error pauses the exchange when the
    reply carries no ``Retry-After`` (Bitfinex blocks an IP for up to 60 s).
    """

    codes: Mapping[str, Fault]
    rate_limit_pause_s: float = 1.0

    @classmethod
    def of(
        cls, codes: Mapping[int | str, Fault], *, rate_limit_pause_s: float = 1.0
    ) -> ErrorTable:
        """A table from codes written as the exchange does (numbers or strings)."""
        return cls({str(code): fault for code, fault in codes.items()}, rate_limit_pause_s)

    def classify(self, body: Any) -> tuple[Fault, str] | None:
        """The fault of the first tabled error in ``body`` and the exchange's words for it;
        None when the body reports no error this table knows."""
        for code, message in error_entries(body):
            for key in _keys(code):
                fault = self.codes.get(key)
                if fault is not None:
                    return fault, message
        return None


def _keys(code: str) -> tuple[str, ...]:
    """``EGeneral:Internal error:extra`` is also looked up as ``EGeneral:Internal error``
    (Kraken: ``<severity><category>:<type>[:<extra info>]``)."""
    parts = code.split(":")
    if len(parts) > 2:
        return code, ":".join(parts[:2])
    return (code,)


def _words(code: str, message: Any) -> str:
    text = str(message or "").strip()
    if not text or text == code:
        return code
    return f"{text} (code {code})"


def error_entries(body: Any) -> list[tuple[str, str]]:
    """``(code, message)`` of every error ``body`` reports, in the exchanges' shapes;
    empty for a body that reports none (data, or a success envelope)."""
    if isinstance(body, list):
        if len(body) >= 2 and body[0] == "error":  # Bitfinex
            code = str(body[1])
            return [(code, _words(code, body[2] if len(body) > 2 else ""))]
        return []
    if not isinstance(body, dict):
        return []
    entries: list[tuple[str, str]] = []
    for code_key, message_key in (("retCode", "retMsg"), ("code", "msg")):  # Bybit; Binance, OKX
        if code_key in body and str(body[code_key]) not in _SUCCESS_CODES:
            code = str(body[code_key])
            entries.append((code, _words(code, body.get(message_key) or body.get("message"))))
            break
    error = body.get("error")
    if isinstance(error, list):  # Kraken; warnings start with W
        entries += [(str(e), str(e)) for e in error if not str(e).startswith("W")]
    elif isinstance(error, dict):  # BitMEX
        said = str(error.get("message") or error.get("name") or "")
        if said:
            entries.append((said, said))
    elif isinstance(error, str) and error:  # Bitfinex ERR_RATE_LIMIT
        entries.append((error, _words(error, body.get("message"))))
    text = body.get("message")
    if not entries and isinstance(text, str) and text:  # Coinbase
        entries.append((text, text))
    return entries
