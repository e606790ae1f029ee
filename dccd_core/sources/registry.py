"""Which class serves which exchange, and where it connects.

Native sources are registered by *import string*, so adding an exchange is adding a
module, and a module that is missing or broken only breaks its own exchange. Every
other exchange id that ccxt knows is served by the generic ccxt source.

Base URLs (origins only, e.g. ``http://127.0.0.1:8080``; the source appends its
paths), first found wins:

1. the explicit argument (the catalog's ``exchanges.<name>.rest_url`` / ``ws_url``);
2. the environment, ``DCCD_<EXCHANGE>_REST_URL`` / ``DCCD_<EXCHANGE>_WS_URL``, read at
   call time (never at import);
3. the source's defaults.

Archive origins (bulk files, ``sources/archives``) follow the same precedence:
``archive_url`` argument (the catalog's ``exchanges.<name>.archive_url``) >
``DCCD_<EXCHANGE>_ARCHIVE_URL`` > the source's ``default_archive_url``.
"""

from __future__ import annotations

import importlib
import os
from urllib.parse import urlsplit

import httpx

from dccd_core.domain import ConfigError, UnknownExchange, validate_exchange_id

from .archives.http_reader import HttpArchiveReader
from .base import Endpoints, Source

__all__ = [
    "CCXT_SOURCE",
    "NATIVE_SOURCES",
    "build_archive_reader",
    "build_source",
    "check_exchange",
    "known_exchanges",
    "resolve_endpoints",
    "source_class",
    "unknown_exchange_message",
    "validate_origin",
]

NATIVE_SOURCES: dict[str, str] = {
    "binance": "dccd_core.sources.binance:BinanceSource",
    "coinbase": "dccd_core.sources.coinbase:CoinbaseSource",
    "kraken": "dccd_core.sources.kraken:KrakenSource",
    "bybit": "dccd_core.sources.bybit:BybitSource",
    "okx": "dccd_core.sources.okx:OkxSource",
    "bitfinex": "dccd_core.sources.bitfinex:BitfinexSource",
    "bitmex": "dccd_core.sources.bitmex:BitmexSource",
}
CCXT_SOURCE = "dccd_core.sources.ccxt_source:CcxtSource"

_SCHEMES = {"rest": ("http", "https"), "ws": ("ws", "wss"), "archive": ("http", "https")}


def _ccxt_exchanges() -> list[str]:
    import ccxt  # slow to import: only when a non-native exchange is asked for

    return [str(name) for name in ccxt.exchanges]


def known_exchanges() -> list[str]:
    """Native exchanges first, then every other exchange id ccxt knows."""
    native = list(NATIVE_SOURCES)
    return native + sorted(set(_ccxt_exchanges()) - set(native))


def unknown_exchange_message(exchange: str) -> str:
    """Why ``exchange`` is refused, with the closest known ids (native and ccxt)."""
    import difflib

    name = str(exchange).strip().lower()
    close = difflib.get_close_matches(name, known_exchanges(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    native = ", ".join(NATIVE_SOURCES)
    return (
        f"unknown exchange {exchange!r}{hint}; use a native source ({native}) "
        "or any ccxt exchange id"
    )


def check_exchange(exchange: str) -> str:
    """The normalised id of an exchange a source serves; else ``UnknownExchange``
    with suggestions. Imports ccxt only for a name that is not native."""
    name = validate_exchange_id(exchange)
    if name in NATIVE_SOURCES or name in _ccxt_exchanges():
        return name
    raise UnknownExchange(unknown_exchange_message(exchange))


def _import(target: str, exchange: str) -> type[Source]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownExchange(
            f"the source of {exchange} ({target}) cannot be loaded: {exc}; "
            "check the dccd installation"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise UnknownExchange(
            f"the source of {exchange} ({target}) is not a Source; check the dccd installation"
        )
    return cls


def source_class(exchange: str) -> tuple[type[Source], bool]:
    """The class serving ``exchange`` and whether it is native (False: ccxt)."""
    name = check_exchange(exchange)
    if name in NATIVE_SOURCES:
        return _import(NATIVE_SOURCES[name], name), True
    return _import(CCXT_SOURCE, name), False


def validate_origin(url: str, exchange: str, kind: str = "rest") -> str:
    """Check an origin (``scheme://host[:port]``, no path) and drop a trailing ``/``."""
    env = f"DCCD_{exchange.upper()}_{kind.upper()}_URL"
    schemes = _SCHEMES[kind]
    text = str(url).strip()
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if (
        parts.scheme not in schemes
        or not parts.hostname
        or not port_ok
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ConfigError(
            f"invalid {kind} URL {url!r} for {exchange} (catalog exchanges.{exchange}."
            f"{kind}_url or {env}): use an origin like {schemes[-1]}://host[:port], "
            f"with scheme {' or '.join(schemes)} and no path"
        )
    return text.rstrip("/")


def resolve_endpoints(
    exchange: str,
    default: Endpoints,
    rest_url: str | None = None,
    ws_url: str | None = None,
) -> Endpoints:
    """Argument > ``DCCD_<EXCHANGE>_*_URL`` > default, each override validated."""
    prefix = f"DCCD_{exchange.upper()}_"
    rest = rest_url or os.environ.get(prefix + "REST_URL") or None
    ws = ws_url or os.environ.get(prefix + "WS_URL") or None
    return Endpoints(
        validate_origin(rest, exchange, "rest") if rest else default.rest_url,
        validate_origin(ws, exchange, "ws") if ws else default.ws_url,
    )


def build_source(
    exchange: str,
    *,
    rest_url: str | None = None,
    ws_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Source:
    """A ready source for ``exchange``, with its own HTTP client and weight limiter.

    The caller owns it: ``async with build_source(...) as source`` or ``await source.aclose()``.
    """
    from dccd_core.transport import HttpClient, WeightLimiter

    name = validate_exchange_id(exchange)
    cls, native = source_class(name)
    if not native:
        return _build_ccxt(cls, name, rest_url, ws_url)
    endpoints = resolve_endpoints(name, cls.default_endpoints, rest_url, ws_url)
    http = HttpClient(
        name,
        endpoints.rest_url,
        limiter=WeightLimiter(cls.capability.weight_per_minute, usage_header=cls.usage_header),
        check_payload=cls.check_payload,
        errors=cls.errors,
        transport=transport,
    )
    for origin, weight_per_minute in cls.extra_origins.items():
        # inert where the REST origin is overridden: no request then goes to ``origin``
        http.set_host_limiter(
            origin, WeightLimiter(weight_per_minute, usage_header=cls.usage_header)
        )
    return cls(http, endpoints)


def _build_ccxt(
    cls: type[Source], name: str, rest_url: str | None, ws_url: str | None
) -> Source:
    """The generic source; ccxt brings its own HTTP session (closed by ``aclose()``)."""
    from .ccxt_source import CcxtSource

    if not issubclass(cls, CcxtSource):
        raise UnknownExchange(f"the generic source of {name} is not a CcxtSource")
    overridden = resolve_endpoints(name, Endpoints("", None), rest_url, ws_url)
    endpoints = overridden if overridden.rest_url or overridden.ws_url else None
    return cls(name, endpoints)


def build_archive_reader(
    exchange: str,
    *,
    archive_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> HttpArchiveReader | None:
    """The reader of ``exchange``'s bulk-file archives, or None where it publishes none.

    Origin: ``archive_url`` > ``DCCD_<EXCHANGE>_ARCHIVE_URL`` > the source's default,
    an override validated like a REST origin (``ConfigError`` naming the fix). The
    caller owns the reader: ``await reader.aclose()``.
    """
    name = validate_exchange_id(exchange)
    cls, native = source_class(name)
    reader_class = cls.archive_reader_class if native else None
    if reader_class is None or cls.default_archive_url is None:
        return None
    override = archive_url or os.environ.get(f"DCCD_{name.upper()}_ARCHIVE_URL") or None
    origin = validate_origin(override, name, "archive") if override else cls.default_archive_url
    return reader_class(origin, transport=transport)
