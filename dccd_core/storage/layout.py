"""Where every file of the lake lives: the one place that turns a dataset into paths.

    {root}/{data_type}/exchange={ex}/symbol={BASE-QUOTE[-SETTLE]}/[span={label}/]{period}.parquet
    .../{period}.seg-{id}.parquet       (segments of the period: see ``segments``)

A period file holds one calendar period of a dataset: a year for candles of 1h and
longer and for funding rates, a month for shorter candles, a day for trades and book.
Periods are named so that their lexical order is their time order, which lets the store
pick the files a time range touches from names alone, without opening any.

Every name that reaches the filesystem comes from a validated domain type (exchange
id regex, symbol alphabet, span labels, the data-type enum) and is checked again here,
so nothing a user types can climb out of the root. Parsing goes the other way for
``list_datasets``: folders that do not round-trip exactly are ignored, never guessed.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from dccd_core.domain import (
    SPANNED_TYPES,
    ConfigError,
    DatasetKey,
    DataType,
    Span,
    Symbol,
    ns_to_datetime,
    validate_exchange_id,
)

from .fs import lake_path, list_entries

__all__ = [
    "COVERAGE_FILE",
    "LOCK_DIR",
    "SEGMENT_MARK",
    "PeriodFile",
    "PeriodKind",
    "coverage_path",
    "dataset_dir",
    "has_dataset",
    "list_datasets",
    "list_period_files",
    "lock_path",
    "period_bounds",
    "period_kind",
    "period_of",
    "period_path",
    "periods_between",
    "segment_path",
]

COVERAGE_FILE = "_coverage.json"
"""Coverage lives beside the period files; the name does not match ``*.parquet``."""

LOCK_DIR = ".locks"
"""Lock files live under the root, outside every data-type folder, so globbing
``{root}/ohlc/**/*.parquet`` never meets them."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_US = 1_000


class PeriodKind(StrEnum):
    """How much time one period file of a dataset holds."""

    YEAR = "year"
    MONTH = "month"
    DAY = "day"


SEGMENT_MARK = ".seg-"
"""``{period}.seg-{id}.parquet``: a segment of a period (rows not in its other files)."""


class PeriodFile(NamedTuple):
    """One existing data file: its period, its path, and its segment id (None: the
    period's base file ``{period}.parquet``)."""

    period: str
    path: Path
    segment: str | None = None


_PERIOD_RE: dict[PeriodKind, re.Pattern[str]] = {
    PeriodKind.YEAR: re.compile(r"^(\d{4})$"),
    PeriodKind.MONTH: re.compile(r"^(\d{4})-(\d{2})$"),
    PeriodKind.DAY: re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
}
_FILE_RE: dict[PeriodKind, re.Pattern[str]] = {
    kind: re.compile(
        "^(?P<period>" + pattern.pattern[1:-1] + r")(?:\.seg-(?P<segment>[0-9a-z]+))?\.parquet$"
    )
    for kind, pattern in _PERIOD_RE.items()
}
_SEGMENT_ID = re.compile(r"^[0-9a-z]+$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9_-]+$")


def period_kind(key: DatasetKey) -> PeriodKind:
    """Yearly files for candles >= 1h and funding, monthly for shorter candles, daily for
    the rest.

    Sized so a file holds roughly 10k-500k rows: big enough for good compression, small
    enough that appending one candle rewrites little.
    """
    if key.data_type in SPANNED_TYPES:
        if key.span is None:  # DatasetKey forbids it; keeps mypy and readers honest
            raise ConfigError(f"{key.data_type} needs a span (e.g. --span 1m)")
        return PeriodKind.YEAR if key.span.seconds >= 3_600 else PeriodKind.MONTH
    if key.data_type is DataType.FUNDING:
        return PeriodKind.YEAR  # one row per funding time: ~1,100 to 8,800 a year
    return PeriodKind.DAY


def period_of(key: DatasetKey, ts: int) -> str:
    """The period name (``2024``, ``2024-02``, ``2024-02-29``) holding ``ts`` (ns)."""
    dt = ns_to_datetime(ts)
    kind = period_kind(key)
    if kind is PeriodKind.YEAR:
        return f"{dt.year:04d}"
    if kind is PeriodKind.MONTH:
        return f"{dt.year:04d}-{dt.month:02d}"
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"


def _to_ns(dt: datetime) -> int:
    delta = dt - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * _NS_PER_US


def period_bounds(key: DatasetKey, period: str) -> tuple[int, int]:
    """The half-open ``[start, end)`` ns range that the period ``period`` covers."""
    kind = period_kind(key)
    match = _PERIOD_RE[kind].match(period)
    if match is None:
        raise ConfigError(f"invalid {kind} period {period!r} for {key}")
    parts = [int(p) for p in match.groups()]
    try:
        if kind is PeriodKind.YEAR:
            start = datetime(parts[0], 1, 1, tzinfo=UTC)
            end = datetime(parts[0] + 1, 1, 1, tzinfo=UTC)
        elif kind is PeriodKind.MONTH:
            start = datetime(parts[0], parts[1], 1, tzinfo=UTC)
            year, month = (parts[0] + 1, 1) if parts[1] == 12 else (parts[0], parts[1] + 1)
            end = datetime(year, month, 1, tzinfo=UTC)
        else:
            start = datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
            end_ns = _to_ns(start) + 86_400 * 1_000_000_000
            return _to_ns(start), end_ns
    except ValueError:
        raise ConfigError(f"invalid {kind} period {period!r} for {key}") from None
    return _to_ns(start), _to_ns(end)


def periods_between(key: DatasetKey, start: int, end: int) -> list[str]:
    """Every period overlapping ``[start, end)``, oldest first (empty when end <= start)."""
    if end <= start:
        return []
    periods = []
    period = period_of(key, start)
    while True:
        periods.append(period)
        _, period_end = period_bounds(key, period)
        if period_end >= end:
            return periods
        period = period_of(key, period_end)


def _checked(part: str, what: str) -> str:
    # Second line of defence behind the domain types: a Symbol or DatasetKey built by
    # hand (bypassing parse) must still not put "..", "/" or "\" into a path.
    if not _SAFE_PART.match(part) or part in {".", ".."}:
        raise ConfigError(f"invalid {what} {part!r} for a lake path")
    return part


def dataset_dir(root: str | os.PathLike[str], key: DatasetKey) -> Path:
    """The folder of one dataset. THE function deriving lake paths; all others use it."""
    symbol = key.symbol
    parts = [
        _checked(key.data_type.value, "data type"),
        "exchange=" + _checked(validate_exchange_id(key.exchange), "exchange"),
        "symbol=" + _checked(symbol.path_name, "symbol"),
    ]
    if Symbol.from_path(symbol.path_name) != symbol:
        raise ConfigError(f"invalid symbol {symbol!r} for a lake path")
    if key.span is not None:
        parts.append("span=" + _checked(Span.parse(key.span.label).label, "span"))
    return lake_path(root).joinpath(*parts)


def period_path(root: str | os.PathLike[str], key: DatasetKey, period: str) -> Path:
    """The Parquet file of one period of a dataset."""
    period_bounds(key, period)  # validates the name: it becomes a file name
    return dataset_dir(root, key) / f"{period}.parquet"


def segment_path(root: str | os.PathLike[str], key: DatasetKey, period: str, segment: str) -> Path:
    """The segment ``segment`` (lowercase alphanumerics) of one period of a dataset."""
    if not _SEGMENT_ID.match(segment):
        raise ConfigError(f"invalid segment id {segment!r}")
    return period_path(root, key, period).with_name(f"{period}{SEGMENT_MARK}{segment}.parquet")


def coverage_path(root: str | os.PathLike[str], key: DatasetKey) -> Path:
    """The dataset's coverage record (fetched time ranges)."""
    return dataset_dir(root, key) / COVERAGE_FILE


def lock_path(root: str | os.PathLike[str], key: DatasetKey) -> Path:
    """The cross-process lock file of a dataset, under ``{root}/.locks``."""
    rel = dataset_dir("", key)
    name = "__".join(p.replace("=", "-") for p in rel.parts)
    return lake_path(root) / LOCK_DIR / f"{name}.lock"


def list_period_files(
    root: str | os.PathLike[str],
    key: DatasetKey,
    *,
    period: str | None = None,
    segments_only: bool = False,
) -> list[PeriodFile]:
    """The data files of a dataset, oldest period first, each period's base file before
    its segments (in id order). Temp, hidden and foreign files are skipped.

    ``period`` keeps only that period's files, ``segments_only`` only segments: both
    filter names before parsing them (a stream flush lists its day's files among years
    of others).
    """
    folder = dataset_dir(root, key)
    pattern = _FILE_RE[period_kind(key)]
    found = []
    prefix = f"{period}." if period is not None else ""
    for entry in list_entries(folder):
        name = entry.name
        if not name.startswith(prefix) or (segments_only and SEGMENT_MARK not in name):
            continue
        match = pattern.match(name)
        if match and entry.is_file:
            found.append(PeriodFile(match["period"], folder / name, match["segment"]))
    found.sort(key=lambda f: (f.period, f.segment or ""))
    return found


def _subdirs(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    return sorted(
        (entry.name[len(prefix) :], folder / entry.name)
        for entry in list_entries(folder)
        if entry.name.startswith(prefix) and entry.is_dir
    )


def has_dataset(root: str | os.PathLike[str], key: DatasetKey) -> bool:
    """Whether the lake holds ``key``: a period file, or a coverage record (fetched,
    maybe empty). False: never fetched into this root."""
    root = lake_path(root)
    return bool(list_period_files(root, key)) or coverage_path(root, key).is_file()


def _parse_key(
    exchange: str, symbol: str, data_type: DataType, span: str | None
) -> DatasetKey | None:
    try:
        sym = Symbol.from_path(symbol)
        sp = Span.parse(span) if span is not None else None
        key = DatasetKey(exchange, sym, data_type, sp)
    except ConfigError:
        return None
    # Only exact round-trips count: "symbol=btc-usdt" or "span=60m" are not ours.
    if key.exchange != exchange or sym.path_name != symbol or (sp and sp.label != span):
        return None
    return key


def list_datasets(root: str | os.PathLike[str]) -> list[DatasetKey]:
    """Every dataset with at least one period file or a coverage record under ``root``.

    Folders that do not parse back into a valid, canonical key are ignored.
    """
    base = lake_path(root)
    keys: list[DatasetKey] = []
    for data_type in DataType:
        for exchange, ex_dir in _subdirs(base / data_type.value, "exchange="):
            for symbol, sym_dir in _subdirs(ex_dir, "symbol="):
                spans: list[str | None] = (
                    [label for label, _ in _subdirs(sym_dir, "span=")]
                    if data_type in SPANNED_TYPES
                    else [None]
                )
                for span in spans:
                    key = _parse_key(exchange, symbol, data_type, span)
                    if key is not None and has_dataset(base, key):
                        keys.append(key)
    return keys
