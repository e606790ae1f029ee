"""The generic source's derivatives series: ccxt's ``fetchFundingRateHistory`` and
``fetchOpenInterestHistory``, declared and parsed.

Declared only where the ccxt exchange says ``has[...] is True`` (``"emulated"`` or a
missing key is not enough: nothing to page), perpetual symbols only (the domain's
derivatives check). Open-interest periods are the exchange's own
``options['fetchOpenInterestHistory']['timeframes']`` where ccxt lists them (OKX), else
the common periods among its candle timeframes; an exchange refusing one says so in
its error, mapped like every ccxt error.

Sample ccxt funding rate history entry (``fetch_funding_rate_history``)::

    {"info": {...}, "symbol": "BTC/USDT:USDT", "fundingRate": 0.0001,
     "timestamp": 1704067200000, "datetime": "2024-01-01T00:00:00.000Z"}

Sample ccxt open interest history entry (``fetch_open_interest_history``)::

    {"symbol": "BTC/USDT:USDT", "openInterestAmount": 80123.4,
     "openInterestValue": 3204936000.0, "timestamp": 1704067200000, "info": {...}}

``openInterestAmount`` is in contracts or base as the exchange counts it (what dccd
stores as ``open_interest``); ``openInterestValue`` its value in quote where sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from dccd_core.domain import ConfigError, Feature, Span, UnexpectedPayload

from . import columns
from .features import rest_funding, rest_open_interest

__all__ = [
    "DERIVATIVES_PAGE_LIMIT",
    "derivatives_features",
    "funding_rows",
    "open_interest_rows",
    "open_interest_timeframes",
]

#: Page size where ccxt declares none: ccxt's 500 default is more than some venues serve
#: (Bybit: 200 funding rows, OKX: 100 open-interest samples), and a window of
#: ``page_limit`` periods must come back whole in one page.
DERIVATIVES_PAGE_LIMIT = 100
#: the open-interest periods exchanges commonly sample (a subset of dccd spans)
_COMMON_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")


def open_interest_timeframes(exchange: Any, candles: Mapping[Span, str]) -> dict[Span, str]:
    """dccd span -> the ccxt timeframe to ask open interest history for: the exchange's
    own list where ccxt keeps one, else the common periods among its ``candles``."""
    options = (getattr(exchange, "options", None) or {}).get("fetchOpenInterestHistory")
    listed = options.get("timeframes") if isinstance(options, Mapping) else None
    if not isinstance(listed, Mapping) or not listed:
        return {span: key for span, key in candles.items() if span.label in _COMMON_PERIODS}
    found: dict[Span, str] = {}
    for key in listed:
        try:
            span = Span.parse(str(key))
        except ConfigError:
            continue  # a spelling that is no dccd span (OKX lists 5M, 1H beside 5m, 1h)
        if span.label == key:
            found[span] = str(key)
    return dict(sorted(found.items(), key=lambda item: item[0].seconds))


def derivatives_features(
    exchange: Any, page_limit: Callable[[str], int | None], candles: Mapping[Span, str]
) -> list[Feature]:
    """The funding and open-interest features ccxt's ``has`` declares for ``exchange``;
    ``page_limit(method)`` is ccxt's declared page for a method, None where it declares
    none (then ``DERIVATIVES_PAGE_LIMIT``)."""
    has: Mapping[str, Any] = exchange.has or {}
    found: list[Feature] = []
    if has.get("fetchFundingRateHistory") is True:
        limit = page_limit("fetchFundingRateHistory") or DERIVATIVES_PAGE_LIMIT
        found.append(rest_funding(page_limit=limit))
    periods = tuple(open_interest_timeframes(exchange, candles))
    if has.get("fetchOpenInterestHistory") is True and periods:
        limit = page_limit("fetchOpenInterestHistory") or DERIVATIVES_PAGE_LIMIT
        found.append(rest_open_interest(page_limit=limit, spans=periods))
    return found


def _entries(data: Any, keys: tuple[str, ...], what: str) -> list[list[Any]]:
    if not isinstance(data, list) or not all(isinstance(e, Mapping) for e in data):
        raise UnexpectedPayload(f"{what}: expected a list of ccxt structures, got {data!r:.200}")
    return [[entry.get(k) for entry in data] for k in keys]


def funding_rows(data: Any, what: str) -> pl.DataFrame:
    """ccxt funding-rate-history entries to the funding schema, sorted by ts."""
    times, rates = _entries(data, ("timestamp", "fundingRate"), what)
    ts = columns.ms_to_ns_column("ts", times, what)
    return columns.funding_frame(ts, rates, what).sort("ts")


def open_interest_rows(data: Any, what: str) -> pl.DataFrame:
    """ccxt open-interest-history entries to the open-interest schema, sorted by ts."""
    keys = ("timestamp", "openInterestAmount", "openInterestValue")
    times, amounts, values = _entries(data, keys, what)
    return columns.open_interest_frame(times, amounts, what, values=values)
