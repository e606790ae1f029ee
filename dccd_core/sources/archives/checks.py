"""Timestamp units and plausibility of archive rows, judged per file.

Unit: Binance spot files switched from milliseconds to microseconds on 2025-01-01
(https://github.com/binance/binance-public-data, "Spot data in microseconds from
2025-01-01"); other files may follow. No file says its unit, so it is read from the
magnitude of its first timestamp (any date from 2001 to 2286 has 13 digits in ms,
16 in µs, 19 in ns) and then held for the whole file: a later batch in another unit
falls outside the file's window and is refused, never silently rescaled.

Plausibility: every row inside the file's ``[start_ts, end_ts)`` and the domain's
``check_rows`` (finite positive prices, known sides, ...). One bad row makes the file
``ArchiveUnavailable``: its window is then fetched over REST.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from dccd_core.domain import DataType, UnexpectedPayload, iso_datetime
from dccd_core.domain.sanity import check_rows

from .base import ArchiveFile, ArchiveUnavailable

__all__ = ["check_archive_rows", "map_sides", "ns_per_unit"]

#: smallest magnitude of each unit's epoch count for dates after 2001-09-09
_UNITS = ((10**18, 1), (10**15, 1_000), (10**12, 1_000_000), (10**9, 1_000_000_000))


def ns_per_unit(sample: int, name: str) -> int:
    """Nanoseconds per unit of an integer epoch timestamp ``sample`` (ns, µs, ms or s)."""
    magnitude = abs(sample)
    for floor, factor in _UNITS:
        if magnitude >= floor:
            return factor
    raise ArchiveUnavailable(name, f"implausible timestamp {sample} (no known unit)")


def check_archive_rows(rows: pl.DataFrame, data_type: DataType, file: ArchiveFile) -> None:
    """Refuse the file if a row lies outside its window or cannot be real."""
    if rows.height == 0:
        return
    ts = rows.get_column("ts")
    outside = (ts < file.start_ts) | (ts >= file.end_ts)
    if outside.any():
        first = int(ts.filter(outside)[0])
        raise ArchiveUnavailable(
            file.name,
            f"implausible: {int(outside.sum())} row(s) outside the file's period "
            f"(e.g. {iso_datetime(first)}; another timestamp unit?)",
        )
    try:
        check_rows(rows, data_type, origin=file.name, now_ts=file.end_ts)
    except UnexpectedPayload as exc:
        raise ArchiveUnavailable(file.name, f"implausible: {exc}") from exc


def map_sides(sides: pl.Series, names: Mapping[str, str], file: ArchiveFile) -> pl.Series:
    """``sides`` in the domain's words (``names``: the file's word -> ours); a side the
    file should not have makes it ``ArchiveUnavailable``."""
    known = sides.is_in(list(names))
    if not known.all():
        bad = sides.filter(~known.fill_null(False))
        raise ArchiveUnavailable(file.name, f"implausible: side {bad.first()!r}")
    return sides.replace_strict(names, return_dtype=pl.Utf8)
