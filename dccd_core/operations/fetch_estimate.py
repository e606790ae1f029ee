"""How many requests fetching some ranges of a dataset takes (``ensure(max_fetch=N)``).

Over REST alone (``estimate_requests``): exact for candles and funding (one request
per page window), rough for trades (from the trade rate stored so far). With archive
files in play (``estimate_fetch``: mode auto/only, the exchange publishes files of the
series and an archive origin applies, as ``backfill`` decides), the files the backfill
would read are counted instead of the REST pages they replace: one request per file
plus one for its published checksum, and REST pages only for what no file holds (none
under ``archives: only``, none older than REST's history under auto). So a year of 1m
candles served by 12 monthly files is ~24 requests, not ~530 pages. Files that turn
out missing or bad fall back to REST at run time: the estimate is what the plan
costs when the files are there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dccd_core.domain import ConfigError, DatasetKey, DataType, now_ns
from dccd_core.sources.archives.base import ArchiveFile
from dccd_core.sources.archives.mode import ArchiveMode
from dccd_core.sources.base import Source
from dccd_core.storage import Store
from dccd_core.storage.coverage import settled_until

from .backfill.archive_setup import archive_reader_for, require_archive
from .backfill.reach import rest_history_start

__all__ = [
    "DEFAULT_TRADES_PER_S",
    "FetchEstimate",
    "archive_files_for",
    "estimate_fetch",
    "estimate_requests",
]

#: The trade rate assumed when nothing of a trades dataset is stored yet.
DEFAULT_TRADES_PER_S = 1.0
_DEFAULT_PAGE_LIMIT = 500  # as the paginators, where a capability declares none


@dataclass(frozen=True, slots=True)
class FetchEstimate:
    """How many data requests fetching ``ranges`` takes (``rough``: trades, a guess)."""

    requests: int
    ranges: tuple[tuple[int, int], ...]
    rough: bool
    note: str


def _page_limit(key: DatasetKey) -> int:
    from dccd_core.sources.registry import source_class

    cls, native = source_class(key.exchange)
    # a native source declares its capability on the class; ccxt's is per instance
    source_cls: type[Source] = cls
    capability = source_cls.capability if native else None
    feature = capability.feature(key.data_type) if capability is not None else None
    return feature.page_limit if feature is not None and feature.page_limit else _DEFAULT_PAGE_LIMIT


def _stored_trade_rate(store: Store, key: DatasetKey) -> float | None:
    """Trades per second over the ranges fetched so far, or None when unknown."""
    if not store.has(key):
        return None
    covered_ns = sum(end - start for start, end in store.coverage(key))
    rows = store.info(key).rows
    if covered_ns <= 0 or rows <= 0:
        return None
    return rows / (covered_ns / 1e9)


def estimate_requests(
    key: DatasetKey,
    ranges: list[tuple[int, int]],
    *,
    store: Store | None = None,
    page_limit: int | None = None,
    now_ts: int | None = None,
) -> FetchEstimate:
    """The data requests a backfill of ``ranges`` takes (the symbol check aside).

    Candles: exactly one per page window (``page_limit`` bars). Trades: one per page of
    the rate stored so far (``DEFAULT_TRADES_PER_S`` when nothing is stored), at least
    one per range; a rough figure, since trade rates swing by orders of magnitude.
    """
    if key.data_type is DataType.BOOK:
        raise ConfigError(f"{key}: order books have no history to fetch; read what is stored")
    limit = page_limit or _page_limit(key)
    now = now_ns() if now_ts is None else now_ts
    if key.span is not None:
        from dccd_core.transport.paginate import candle_windows

        horizon = settled_until(key, now)
        count = sum(
            len(candle_windows(a, min(b, horizon), key.span, limit))
            for a, b in ranges
            if min(b, horizon) > a
        )
        note = f"{count} page(s) of up to {limit} {key.span} candles"
        return FetchEstimate(count, tuple(ranges), False, note)
    if key.data_type is DataType.FUNDING:
        from dccd_core.transport.paginate import FUNDING_STEP

        width = limit * FUNDING_STEP.ns  # the paginator's funding windows
        count = sum(-(-(min(b, now) - a) // width) for a, b in ranges if min(b, now) > a)
        note = f"{count} page(s) of up to {limit} hours of funding rates"
        return FetchEstimate(count, tuple(ranges), False, note)
    rate = _stored_trade_rate(store, key) if store is not None else None
    basis = "the trade rate stored so far" if rate is not None else "no trades stored yet"
    rate = rate if rate is not None else DEFAULT_TRADES_PER_S
    count = sum(max(1, math.ceil(rate * (b - a) / 1e9 / limit)) for a, b in ranges)
    note = (
        f"a rough estimate for trades: {rate:,.2f} trades/s ({basis}), {limit} per page; "
        "the real count can differ a lot"
    )
    return FetchEstimate(count, tuple(ranges), True, note)


async def archive_files_for(
    key: DatasetKey,
    ranges: list[tuple[int, int]],
    source: Source,
    archives: ArchiveMode,
    archive_url: str | None,
    now_ts: int,
) -> list[tuple[ArchiveFile, int, int]]:
    """The archive files a backfill of each range would read, clipped to it
    (``(file, a, b)``, in order); [] where it would go to REST alone. Decided as
    ``backfill`` decides (``require_archive``, ``archive_reader_for``), so ``archives:
    only`` on a series without files is the same ConfigError here, before any request.
    Pure: planning makes no request."""
    if key.data_type is DataType.BOOK or not require_archive(source, key, archives):
        return []
    reader, owned = archive_reader_for(key, source, archives, None, archive_url)
    if reader is None:
        return []
    out: list[tuple[ArchiveFile, int, int]] = []
    try:
        for a, b in ranges:
            for file in reader.plan_files(key, a, b, now_ts):
                lo, hi = max(a, file.start_ts), min(b, file.end_ts)
                if hi > lo:
                    out.append((file, lo, hi))
    finally:
        if owned is not None:
            await owned.aclose()  # planning opened no connection: nothing to wait for
    return out


def _uncovered(
    ranges: list[tuple[int, int]], files: list[tuple[ArchiveFile, int, int]]
) -> list[tuple[int, int]]:
    """``ranges`` minus the files' windows."""
    out: list[tuple[int, int]] = []
    spans = sorted((a, b) for _, a, b in files)
    for a, b in ranges:
        cursor = a
        for fa, fb in spans:
            if fb <= cursor or fa >= b:
                continue
            if fa > cursor:
                out.append((cursor, fa))
            cursor = max(cursor, fb)
        if cursor < b:
            out.append((cursor, b))
    return out


async def estimate_fetch(
    key: DatasetKey,
    ranges: list[tuple[int, int]],
    *,
    source: Source,
    archives: ArchiveMode,
    archive_url: str | None = None,
    store: Store | None = None,
    now_ts: int | None = None,
) -> FetchEstimate:
    """The requests a backfill of ``ranges`` takes, archive files counted where the
    backfill would read them (module docstring); ``estimate_requests`` otherwise."""
    now = now_ns() if now_ts is None else now_ts
    files = await archive_files_for(key, ranges, source, archives, archive_url, now)
    if not files:
        return estimate_requests(key, ranges, store=store, now_ts=now)
    file_requests = sum(1 + (f.checksum_path is not None) for f, _, _ in files)
    rest = [] if archives is ArchiveMode.ONLY else _uncovered(ranges, files)
    reach = rest_history_start(source, key, now) if rest else None
    if reach is not None:  # older than REST's history: left uncovered, not fetched
        rest = [(max(a, reach), b) for a, b in rest if b > reach]
    checksums = "file + checksum" if any(f.checksum_path for f, _, _ in files) else "file"
    note = f"{len(files)} archive file(s), {file_requests} requests ({checksums} each)"
    if not rest:
        return FetchEstimate(file_requests, tuple(ranges), False, note)
    tail = estimate_requests(key, rest, store=store, now_ts=now)
    note += f", then over REST for what no file holds: {tail.note}"
    return FetchEstimate(file_requests + tail.requests, tuple(ranges), tail.rough, note)
