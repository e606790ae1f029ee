"""What the source registry says about an exchange: whether a source serves it and,
for a native source, its declared capability (checked against each dataset)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from dccd_core.domain import (
    SPANNED_TYPES,
    STREAM_ONLY,
    Capability,
    DataType,
    DccdError,
    NoCapability,
    Span,
    Symbol,
    Transport,
    now_ns,
    to_ns,
)
from dccd_core.sources.archives.mode import ArchiveMode

from .shape import _DatasetModel

__all__ = ["check_archives", "check_capability", "exchange_capability", "is_known_exchange",
           "known_exchange_ids", "unknown_exchange"]

def _native_exchange_ids() -> frozenset[str]:
    try:
        from dccd_core.sources.registry import NATIVE_SOURCES
    except ImportError:  # pragma: no cover - the registry ships with the sources
        return frozenset()
    return frozenset(NATIVE_SOURCES)


@functools.cache
def known_exchange_ids() -> frozenset[str]:
    """Native sources (the registry) plus every ccxt exchange id (imports ccxt, ~0.5 s)."""
    import ccxt

    return _native_exchange_ids() | frozenset(str(name) for name in ccxt.exchanges)


def is_known_exchange(name: str) -> bool:
    """Whether a source serves ``name``; ccxt is imported only for a non-native name."""
    return name in _native_exchange_ids() or name in known_exchange_ids()


@functools.cache
def exchange_capability(exchange: str) -> Capability | None:
    """A native source's declared capability (a class attribute: importing its module is
    the whole cost, once per exchange). None for ccxt exchanges: their capability needs
    a ccxt instance, so the ccxt source checks it at run time, before the first page."""
    try:
        from dccd_core.sources.registry import NATIVE_SOURCES, source_class
    except ImportError:  # pragma: no cover - the registry ships with the sources
        return None
    if exchange not in NATIVE_SOURCES:
        return None
    try:
        cls, _native = source_class(exchange)
    except DccdError:
        return None
    capability = getattr(cls, "capability", None)
    return capability if isinstance(capability, Capability) else None


def unknown_exchange(name: str) -> str:
    from dccd_core.sources.registry import unknown_exchange_message

    return unknown_exchange_message(name)


def check_capability(
    exchange: str,
    data_types: Sequence[DataType],
    spans: Sequence[Span],
    ds: _DatasetModel,
    where: str,
    streams: Sequence[DataType],
    problems: list[str],
    symbols: Sequence[Symbol] = (),
) -> None:
    capability = exchange_capability(exchange)
    if capability is None:
        return
    for j, dt in enumerate(data_types):
        if capability.feature(dt, Transport.REST) is None and capability.feature(
            dt, Transport.WS
        ) is None:
            problems.append(
                f"{where}.data_types[{j}]: {exchange} cannot serve {dt}; remove it "
                "(see `dccd capabilities`)"
            )
    for candles in (dt for dt in data_types if dt in SPANNED_TYPES):
        feature = capability.feature(candles, Transport.REST)
        for j, span in enumerate(spans):
            if feature is not None and feature.spans and span not in feature.spans:
                allowed = " ".join(s.label for s in feature.spans)
                what = {DataType.OHLC: "candles", DataType.OPEN_INTEREST: "open interest"}.get(
                    candles, f"{candles} candles"
                )
                problems.append(
                    f"{where}.spans[{j}]: {exchange} has no {span} {what}; use one of {allowed}"
                )
    # Partitions are backfilled from ``start`` over REST: the history must be reachable,
    # unless the exchange's archive files hold it for every symbol (Bybit trades: no REST
    # history, daily files); days not in the files yet are then reported uncovered
    start_ts, now_ts = to_ns(ds.start), now_ns()
    for j, dt in enumerate(data_types):
        feature = capability.feature(dt, Transport.REST)
        if dt is DataType.BOOK or dt in streams or feature is None:
            continue
        rolling_bars = feature.history_bars is not None and dt is DataType.OPEN_INTEREST
        if feature.history_days is not None or rolling_bars:
            # a rolling window (Binance: 30 days of open interest, OKX: its last 1,440
            # samples): any start ages past it while the update schedule keeps the dataset
            # complete; a run for an older partition is refused before its first request
            continue
        wanted: Sequence[Span | None] = spans if dt in SPANNED_TYPES else [None]
        for maybe_span in wanted:
            if (
                ds.archives is not ArchiveMode.OFF
                and symbols
                and all(capability.archive(dt, s.market_kind, maybe_span) for s in symbols)
            ):
                continue
            try:
                capability.require(
                    dt, Transport.REST, span=maybe_span, start_ts=start_ts, now_ts=now_ts
                )
            except NoCapability as exc:
                problems.append(f"{where}.data_types[{j}]: {exc}")
    if DataType.BOOK in data_types:
        for transport in (Transport.REST, Transport.WS):
            feature = capability.feature(DataType.BOOK, transport)
            if feature is not None and feature.book_depths and ds.book.depth not in (
                feature.book_depths
            ):
                try:
                    capability.require(
                        DataType.BOOK, transport, depth=ds.book.depth, history=False
                    )
                except NoCapability as exc:
                    problems.append(f"{where}.book.depth: {exc}")
                break
    for j, st in enumerate(streams):
        streamed = st in data_types or st in STREAM_ONLY
        if streamed and capability.feature(st, Transport.WS) is None:
            problems.append(
                f"{where}.stream[{j}]: {exchange} has no live {st} stream; remove it from stream"
            )


def check_archives(
    exchange: str,
    data_types: Sequence[DataType],
    spans: Sequence[Span],
    symbols: Sequence[Symbol],
    mode: ArchiveMode,
    where: str,
    problems: list[str],
) -> None:
    """``archives: only`` needs bulk files for every series of the dataset that has
    history (books and stream-only types have none to fetch either way)."""
    if mode is not ArchiveMode.ONLY:
        return
    capability = exchange_capability(exchange)
    fix = "use archives: auto (archive files where there are any, else REST) or off"
    for dt in data_types:
        if dt is DataType.BOOK or dt in STREAM_ONLY:
            continue
        for span in spans if dt in SPANNED_TYPES else [None]:
            for symbol in symbols:
                found = capability.archive(dt, symbol.market_kind, span) if capability else None
                if found is None:
                    what = f"{symbol.market_kind} {dt}" + (f" {span}" if span else "")
                    problems.append(
                        f"{where}.archives: only, but {exchange} publishes no archive files "
                        f"of {what} ({symbol}); {fix}"
                    )
                    return
