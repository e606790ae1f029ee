"""``symbols``: an exchange's markets, from its metadata endpoint, cached on disk.

The list comes from the source's own market listing (``Source.fetch_symbols``: Binance
``exchangeInfo``, Bybit ``instruments-info``, ccxt ``load_markets`` for every other
exchange), in dccd's unified form (``BTC/USDT`` spot, ``BTC/USDT:USDT`` linear,
``BTC/USD:BTC`` inverse). Each fetch is saved with its fetch time under the cache
folder (``$DCCD_CACHE_DIR``, else the platform's user cache folder, e.g.
``~/.cache/dccd``), as ``symbols/<exchange>.json``.

A cached list younger than ``max_age_s`` is served without a request. When the
exchange cannot be reached, the cached list is served whatever its age, with a warning
(``cannot reach binance (...); cached list from <date>``); with no cache that is a
``TransportError``. Listings include delisted markets where the exchange lists them
(their history can still be fetched).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dccd_core.domain import (
    ConfigError,
    DccdError,
    Symbol,
    TransportError,
    iso_datetime,
    now_ns,
    to_ns,
)

from .sync import sync_twin

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "MarketType",
    "SymbolList",
    "cache_dir",
    "market_type",
    "symbols",
    "symbols_async",
]

MarketType = Literal["spot", "linear", "inverse"]
MARKET_TYPES: tuple[str, ...] = ("spot", "linear", "inverse")
DEFAULT_MAX_AGE_S = 3_600.0
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$DCCD_CACHE_DIR``, else the user cache folder (platformdirs), else ``~/.cache/dccd``."""
    env = os.environ.get("DCCD_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
        return Path(base).expanduser() / "dccd"
    return Path(platformdirs.user_cache_dir("dccd", appauthor=False))


def market_type(symbol: Symbol) -> MarketType:
    """``spot`` (no settle), ``linear`` (settled in the quote), ``inverse`` (in the base)."""
    if symbol.settle is None:
        return "spot"
    return "linear" if symbol.settle == symbol.quote else "inverse"


@dataclass(frozen=True, slots=True)
class SymbolList:
    """The markets of ``exchange`` (filtered as asked), when they were fetched, and
    whether they came from the cache; ``warning`` says why a stale cache was served."""

    exchange: str
    symbols: tuple[Symbol, ...]
    fetched_ts: int
    from_cache: bool
    warning: str | None = None

    @property
    def fetched_at(self) -> str:
        return iso_datetime(self.fetched_ts)

    def rows(self) -> list[dict[str, str | None]]:
        return [
            {
                "symbol": str(s),
                "base": s.base,
                "quote": s.quote,
                "settle": s.settle,
                "type": market_type(s),
            }
            for s in self.symbols
        ]


def _cache_file(root: Path, exchange: str) -> Path:
    return root / "symbols" / f"{exchange}.json"


def _load(path: Path) -> tuple[int, list[Symbol]] | None:
    """(fetch time, symbols) of a cache file, or None when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != _CACHE_VERSION:
            return None
        return to_ns(data["fetched_at"]), [Symbol.parse(s) for s in data["symbols"]]
    except (OSError, ValueError, KeyError, TypeError, DccdError):
        return None


def _save(path: Path, exchange: str, fetched_ts: int, found: list[Symbol]) -> None:
    """Atomic write; a cache that cannot be written is no reason to fail the listing."""
    payload = {
        "version": _CACHE_VERSION,
        "exchange": exchange,
        "fetched_at": iso_datetime(fetched_ts),
        "symbols": [str(s) for s in found],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".symbols-", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out)
        os.replace(tmp, path)
    except OSError:
        pass


async def _fetch(exchange: str) -> list[Symbol]:
    from dccd_core.sources.registry import build_source
    from dccd_core.transport.http import HttpClient
    from dccd_core.transport.retry import RetryPolicy

    async with build_source(exchange) as source:
        # (ccxt has no dccd HTTP client: its own retries stand)
        if source.http_stats is not None and isinstance(source.http, HttpClient):
            # metadata for a person waiting: a few quick tries, then the cache
            source.http.retry = RetryPolicy(attempts=3, base_s=0.2, max_s=1.0)
        found = await source.fetch_symbols()
    if found is None:
        raise ConfigError(f"{exchange}: the source cannot list its markets")
    return sorted(found, key=str)


def _filtered(found: list[Symbol], quote: str | None, kind: str | None) -> tuple[Symbol, ...]:
    q = quote.strip().upper() if quote else None
    return tuple(
        s for s in found if (q is None or s.quote == q) and (kind is None or market_type(s) == kind)
    )


async def symbols_async(
    exchange: str,
    *,
    quote: str | None = None,
    type: str | None = None,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    refresh: bool = False,
) -> SymbolList:
    """The markets of ``exchange``; see the module docstring.

    ``quote``: only markets quoted in it (``USDT``); ``type``: ``spot``, ``linear`` or
    ``inverse``; ``refresh``: ask the exchange even when the cache is young.
    """
    from dccd_core.sources.registry import check_exchange

    name = check_exchange(exchange)
    kind = type.strip().lower() if type else None
    if kind is not None and kind not in MARKET_TYPES:
        raise ConfigError(f"unknown market type {type!r}: use one of {', '.join(MARKET_TYPES)}")
    path = _cache_file(cache_dir(), name)
    cached = _load(path)
    now = now_ns()
    if cached is not None and not refresh and now - cached[0] <= max_age_s * 1e9:
        return SymbolList(name, _filtered(cached[1], quote, kind), cached[0], True)
    try:
        found = await _fetch(name)
    except TransportError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type_name(exc)
        if cached is None:
            raise TransportError(
                f"cannot reach {name} ({reason}); no cached list: retry when the network is back"
            ) from exc
        warning = f"cannot reach {name} ({reason}); cached list from {iso_datetime(cached[0])}"
        return SymbolList(name, _filtered(cached[1], quote, kind), cached[0], True, warning)
    _save(path, name, now, found)
    return SymbolList(name, _filtered(found, quote, kind), now, False)


def type_name(exc: BaseException) -> str:
    return exc.__class__.__name__


symbols = sync_twin(symbols_async, """The synchronous ``symbols_async``.""")
