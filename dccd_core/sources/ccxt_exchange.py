"""Build a ccxt exchange for the generic source and read its facts into a ``Capability``.

ccxt (https://docs.ccxt.com) knows about a hundred exchanges; dccd uses it for every
exchange without a native source, for candles and trades over REST. This module is the
only place that instantiates ccxt classes. It:

* refuses an unknown id with ``UnknownExchange`` listing close and well-known ids;
* turns ccxt's own rate limiter off (``enableRateLimit=False``): it sleeps its full
  spacing after every response, and dccd's weight limiter already paces requests;
* points every URL of ``urls['api']`` (a str or a nested dict of them) at an origin
  override, keeping the path, for mirrors, testnets and the test suite's fakes;
* derives the ``Capability`` from ccxt's ``has`` (``fetchOHLCV``, ``fetchTrades``,
  ``fetchOrderBook``, and ``fetchFundingRateHistory`` / ``fetchOpenInterestHistory``
  through ``ccxt_derivatives``), ``timeframes`` (only those that are dccd spans), ``features``
  (page limits) and ``rateLimit`` (ms between requests -> weight per minute);
* records per-venue paging facts ccxt does not expose (``TradeQuirks``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async

from dccd_core.domain import Capability, ConfigError, Feature, Span, UnknownExchange

from .ccxt_derivatives import derivatives_features
from .features import rest_book, rest_candles, rest_trades

__all__ = [
    "DEFAULT_PAGE_LIMIT",
    "TradeQuirks",
    "create_exchange",
    "derive_capability",
    "feature_limit",
    "rewrite_api_urls",
    "span_timeframes",
    "trade_quirks",
]

#: Page size when ccxt does not say (most venues accept at least this).
DEFAULT_PAGE_LIMIT = 500
#: ccxt's request timeout, ms.
DEFAULT_TIMEOUT_MS = 10_000
_WELL_KNOWN = ("binance", "bitstamp", "coinbase", "gate", "htx", "kraken", "kucoin", "mexc", "okx")


@dataclass(frozen=True, slots=True)
class TradeQuirks:
    """How one venue's trade endpoint really pages, beyond what ccxt declares.

    ``window_ms``: the widest ``[since, until]`` a time-addressed page may span, or
    None where ``since`` alone works. A page that is not full then covers its whole
    window, so an empty window is a quiet stretch, not the end of the data.
    A full windowed page is never trusted to be the window's head (Binance returns
    the window's *last* trades then), so the pager narrows the window instead.
    ``id_param``: the request parameter that addresses trades by (integer) id.
    ``page_limit``: the venue's largest trade page, where ccxt does not declare it.
    """

    window_ms: int | None = None
    id_param: str | None = None
    page_limit: int | None = None


#: Binance aggTrades (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/
#: market-data-endpoints#compressedaggregate-trades-list): startTime..endTime must be under
#: one hour, ``limit`` max 1000 counts from the end of the window (binance-spot-api-docs
#: issue #10), ``fromId`` addresses consecutive aggregate ids and excludes a time window.
BINANCE_TRADES = TradeQuirks(window_ms=3_600_000, id_param="fromId", page_limit=1_000)
GENERIC_TRADES = TradeQuirks()


def trade_quirks(exchange_id: str) -> TradeQuirks:
    """The paging facts of ``exchange_id`` (Binance and its ccxt variants share them)."""
    if exchange_id.startswith("binance"):
        return BINANCE_TRADES
    return GENERIC_TRADES


def _unknown(exchange_id: str) -> UnknownExchange:
    close = difflib.get_close_matches(exchange_id, ccxt_async.exchanges, n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UnknownExchange(
        f"unknown exchange id {exchange_id!r}: {hint}ccxt knows {len(ccxt_async.exchanges)} "
        f"ids, e.g. {', '.join(_WELL_KNOWN)} (list them all with "
        "`python -c 'import ccxt; print(ccxt.exchanges)'`)"
    )


def create_exchange(
    exchange_id: str,
    rest_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
) -> Any:
    """A ``ccxt.async_support`` exchange with its limiter off and its URLs overridden.

    ``options`` are merged over ccxt's own (e.g. Binance ``{'fetchMarkets': {'types':
    ['spot']}}`` to load only spot markets). The caller must ``await exchange.close()``.
    """
    if exchange_id not in ccxt_async.exchanges:
        raise _unknown(exchange_id)
    cls = getattr(ccxt_async, exchange_id)
    config: dict[str, Any] = {"enableRateLimit": False, "timeout": timeout_ms}
    if options:
        config["options"] = dict(options)
    exchange = cls(config)
    if rest_url:
        exchange.urls["api"] = rewrite_api_urls(exchange.urls.get("api"), rest_url)
    return exchange


def rewrite_api_urls(value: Any, origin: str) -> Any:
    """Every URL in ``value`` (str, or dicts/lists of them) moved to ``origin``, path kept.

    ``https://api.binance.com/api/v3`` with ``http://127.0.0.1:8080`` becomes
    ``http://127.0.0.1:8080/api/v3``.
    """
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"invalid REST origin {origin!r}: use scheme://host[:port], e.g. http://127.0.0.1:8080"
        )
    base = f"{parts.scheme}://{parts.netloc}"
    return _rewrite(value, base)


def _rewrite(value: Any, base: str) -> Any:
    if isinstance(value, str):
        url = urlsplit(value)
        if not url.scheme or not url.netloc:
            return value
        return base + url.path + (f"?{url.query}" if url.query else "")
    if isinstance(value, dict):
        return {key: _rewrite(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, base) for item in value]
    return value


def span_timeframes(timeframes: Mapping[str, Any] | None) -> dict[Span, str]:
    """dccd span -> ccxt timeframe key, for the timeframes that are dccd spans.

    An exact label (``1h``) wins over an equivalent spelling (``60m``); ccxt-only
    timeframes (``1s``, ``3d``, ``1M``) are left out.
    """
    result: dict[Span, str] = {}
    for key in timeframes or {}:
        try:
            span = Span.parse(key)
        except ConfigError:
            continue
        if span not in result or key == span.label:
            result[span] = key
    return dict(sorted(result.items(), key=lambda item: item[0].seconds))


def _feature_limits(features: Any, method: str) -> Iterator[int]:
    """Every ``features[...][method]['limit']`` in ccxt's nested features tree."""
    if not isinstance(features, dict):
        return
    for key, value in features.items():
        if key == method and isinstance(value, dict):
            limit = value.get("limit")
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                yield limit
        elif isinstance(value, dict):
            yield from _feature_limits(value, method)


def feature_limit(features: Any, method: str) -> int:
    """The smallest page limit ccxt declares for ``method`` over the market types (a
    safe page on every market), else ``DEFAULT_PAGE_LIMIT``."""
    return min(_feature_limits(features, method), default=DEFAULT_PAGE_LIMIT)


def derive_capability(exchange: Any, exchange_id: str) -> Capability:
    """What the generic source can serve on ``exchange``, from ccxt's declarations.

    The candle page limit is the smallest ``features...fetchOHLCV.limit`` over the
    market types (a safe page on every market); trades use the venue's known limit or
    ``DEFAULT_PAGE_LIMIT``.
    """
    has: Mapping[str, Any] = exchange.has or {}
    features: list[Feature] = []
    spans = tuple(span_timeframes(exchange.timeframes))
    if has.get("fetchOHLCV") is True and spans:
        features.append(
            rest_candles(page_limit=feature_limit(exchange.features, "fetchOHLCV"), spans=spans)
        )
    if has.get("fetchTrades") is True:
        quirks = trade_quirks(exchange_id)
        features.append(rest_trades(page_limit=quirks.page_limit or DEFAULT_PAGE_LIMIT))
    if has.get("fetchOrderBook") is True:
        features.append(rest_book())
    features += derivatives_features(
        exchange,
        lambda method: min(_feature_limits(exchange.features, method), default=None),
        span_timeframes(exchange.timeframes),
    )
    rate_limit_ms = exchange.rateLimit
    per_minute = 1_200
    if isinstance(rate_limit_ms, int | float) and rate_limit_ms > 0:
        per_minute = max(1, int(60_000 / rate_limit_ms))
    markets = tuple(m for m in ("spot", "swap", "future") if has.get(m))
    urls = exchange.urls or {}
    docs = urls.get("doc")
    docs_url = docs[0] if isinstance(docs, list) and docs else docs if isinstance(docs, str) else ""
    return Capability(
        exchange=exchange_id,
        features=tuple(features),
        weight_per_minute=per_minute,
        docs_url=docs_url,
        markets=markets or ("spot",),
    )
