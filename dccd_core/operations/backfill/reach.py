"""How far back REST and the archive files reach, and what neither can serve.

With archive files in play, REST's history depth no longer decides a backfill alone:
Bybit's REST keeps only its latest trades, yet its daily trade files hold every closed
day. So the planner is told where REST's history begins (``rest_history_start``) and
fetches over REST only what lies after it; a window older than that which no usable
file holds is left uncovered, named, and listed in the result. A request that neither
the files nor REST can serve any part of is refused before any work
(``refuse_unservable``).
"""

from __future__ import annotations

from dccd_core.domain import (
    NS_PER_DAY,
    DatasetKey,
    NoCapability,
    Transport,
    iso_datetime,
)
from dccd_core.sources.archives.base import ArchiveFile
from dccd_core.sources.base import Source

__all__ = [
    "refuse_origin_search",
    "refuse_unservable",
    "rest_gap_hint",
    "rest_history_start",
]


def rest_history_start(source: Source, key: DatasetKey, now_ts: int) -> int | None:
    """The oldest ts REST can page back to for ``key`` (None: its whole history;
    ``now_ts``: none, only the latest page), by the capability's ``recent_only``,
    ``history_bars`` and ``history_days`` (the limits ``Capability.require`` checks)."""
    feature = source.capability.feature(key.data_type, Transport.REST)
    if feature is None or feature.recent_only:
        return now_ts
    reach: int | None = None
    if feature.history_bars is not None and key.span is not None:
        reach = key.span.floor(now_ts) - (feature.history_bars - 1) * key.span.ns
    if feature.history_days is not None:
        by_days = now_ts - feature.history_days * NS_PER_DAY
        reach = by_days if reach is None else max(reach, by_days)
    return reach


def rest_gap_hint(source: Source, key: DatasetKey) -> str:
    """Why REST cannot serve an old window of ``key``, and what to use instead."""
    feature = source.capability.feature(key.data_type, Transport.REST)
    label = feature.history_label if feature is not None else "none"
    hint = f"{key.exchange} REST history of {key.data_type}: {label}"
    if feature is not None and feature.alternative:
        hint += f"; {feature.alternative}"
    return hint


def refuse_origin_search(source: Source, key: DatasetKey, now_ts: int, asked: str) -> None:
    """``NoCapability`` when the start was asked as the exchange's origin (``asked``: how
    the caller spells it) with archive files in play: the origin is searched over REST,
    and a REST that keeps no full history would find a later start than the files hold."""
    if rest_history_start(source, key, now_ts) is not None:
        raise NoCapability(
            f"{key}: {asked} is found over REST, which keeps no full "
            f"history ({rest_gap_hint(source, key)}): give a start date"
        )


def refuse_unservable(
    source: Source,
    key: DatasetKey,
    start_ts: int,
    end_ts: int,
    files: list[ArchiveFile],
    rest_from_ts: int | None,
) -> None:
    """``NoCapability`` when no part of ``[start_ts, end_ts)`` can be had: no planned
    archive file overlaps it and REST's history begins at or after its end."""
    if any(f.start_ts < end_ts and f.end_ts > start_ts for f in files):
        return
    if rest_from_ts is None or rest_from_ts < end_ts:
        return
    raise NoCapability(
        f"{key}: {iso_datetime(start_ts)} -> {iso_datetime(end_ts)} can be served neither "
        "by the archive files (none is published for it yet) nor over REST "
        f"({rest_gap_hint(source, key)}); backfill closed days once their files are "
        "published (a day's file appears a day or two after it closes)"
    )
