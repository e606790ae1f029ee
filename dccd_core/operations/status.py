"""``status``: how fresh each dataset of a catalog is, for a person, cron or a probe.

Per dataset of the catalog: the last stored ts, the age of the data (from the end of
what was fetched: the later of the last row's end, i.e. its ts plus the span for
candles, and the end of the recorded coverage), the holes of the last N days
(``Store.hole_report``, from the catalog's start at the earliest) and whether its
stream runs. State: ``missing`` (nothing stored), ``stale`` (older than
``stale_after``) or ``fresh``; ``healthy`` is False when any is not fresh.

The stream column comes from a ``StreamReader`` the caller passes: the core never
imports Dagster, so reading run records is the Dagster layer's job
(``dccd_pipelines.run_records.stream_states``, which ``dccd status`` passes):
``running`` or ``stopped``. Without a reader, or when it cannot reach the instance,
it is ``unknown``, never a guess; ``-`` for a dataset the catalog does not stream.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dccd_core.catalog import Catalog, load_catalog
from dccd_core.domain import (
    NS_PER_DAY,
    ConfigError,
    DatasetKey,
    DccdError,
    iso_datetime,
    now_ns,
)
from dccd_core.storage import Store

__all__ = [
    "DatasetStatus",
    "StatusReport",
    "StreamReader",
    "parse_duration_s",
    "status",
    "status_of",
]

#: Which streamed datasets have a live stream run: (running by dataset key, or None
#: when that cannot be known, and a word on the instance: ``reachable`` or
#: ``unknown (<why>)``).
StreamReader = Callable[[Catalog], tuple[Mapping[DatasetKey, bool] | None, str]]

DEFAULT_STALE_AFTER_S = 2 * 3_600.0
DEFAULT_DAYS = 7
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration_s(value: str | float | int) -> float:
    """``"2h"``, ``"90m"``, ``"1d"``, ``"30s"``, ``3600`` (seconds) -> seconds, > 0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if match is None:
            raise ConfigError(f"invalid duration {value!r}: use e.g. 30m, 2h, 1d")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if seconds <= 0:
        raise ConfigError(f"invalid duration {value!r}: must be > 0")
    return seconds


@dataclass(frozen=True, slots=True)
class DatasetStatus:
    """One dataset's freshness; ``age_s`` and ``fetched_until`` are None when missing."""

    key: DatasetKey
    state: str  # "fresh" | "stale" | "missing"
    last_ts: int | None
    fetched_until: int | None
    age_s: float | None
    holes: int
    missing_s: float
    stream: str  # "running" | "stopped" | "unknown" | "-" (not streamed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.key),
            "exchange": self.key.exchange,
            "symbol": str(self.key.symbol),
            "data_type": self.key.data_type.value,
            "span": self.key.span.label if self.key.span else None,
            "state": self.state,
            "last_ts": iso_datetime(self.last_ts) if self.last_ts is not None else None,
            "fetched_until": (
                iso_datetime(self.fetched_until) if self.fetched_until is not None else None
            ),
            "age_s": round(self.age_s, 3) if self.age_s is not None else None,
            "holes": self.holes,
            "missing_s": round(self.missing_s, 3),
            "stream": self.stream,
        }


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Every dataset's status and the settings they were judged with."""

    datasets: tuple[DatasetStatus, ...]
    now_ts: int
    stale_after_s: float
    days: int
    root: Path
    dagster: str  # "reachable" | "unknown (<why>)"

    @property
    def healthy(self) -> bool:
        return all(d.state == "fresh" for d in self.datasets)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": iso_datetime(self.now_ts),
            "root": str(self.root),
            "stale_after_s": self.stale_after_s,
            "days": self.days,
            "dagster": self.dagster,
            "healthy": self.healthy,
            "datasets": [d.as_dict() for d in self.datasets],
        }


def status_of(
    store: Store,
    key: DatasetKey,
    *,
    now_ts: int,
    stale_after_s: float,
    days: int,
    since_ts: int | None = None,
    stream: str = "-",
) -> DatasetStatus:
    """The status of one dataset of ``store`` at ``now_ts`` (see the module docstring)."""
    last = store.last_ts(key) if store.has(key) else None
    coverage = store.coverage(key) if store.has(key) else None
    ends = []
    if last is not None:
        ends.append(last + key.span.ns if key.span is not None else last)
    if coverage is not None and coverage.end is not None:
        ends.append(coverage.end)
    if not ends:
        return DatasetStatus(key, "missing", None, None, None, 0, 0.0, stream)
    fetched_until = max(ends)
    age_s = max(0.0, (now_ts - fetched_until) / 1e9)
    window_start = now_ts - days * NS_PER_DAY
    if since_ts is not None:
        window_start = max(window_start, since_ts)
    holes: tuple[tuple[int, int], ...] = ()
    if window_start < now_ts:
        holes = store.hole_report(key, window_start, now_ts, now_ts=now_ts).holes
    state = "stale" if age_s > stale_after_s else "fresh"
    missing_s = sum(b - a for a, b in holes) / 1e9
    return DatasetStatus(key, state, last, fetched_until, age_s, len(holes), missing_s, stream)


def _load_catalog(path: str | os.PathLike[str] | None) -> Catalog:
    try:
        return load_catalog(os.fspath(path) if path is not None else None)
    except DccdError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def status(
    catalog: Catalog | str | os.PathLike[str] | None = None,
    *,
    stale_after: str | float = DEFAULT_STALE_AFTER_S,
    days: int = DEFAULT_DAYS,
    root: str | os.PathLike[str] | None = None,
    now_ts: int | None = None,
    streams: StreamReader | None = None,
) -> StatusReport:
    """The status of every dataset of the catalog (default ``$DCCD_CONFIG`` or
    ``./dccd.yaml``) in its lake (``root`` overrides the catalog's ``store.root``).

    ``catalog`` may be one already loaded; ``stale_after``: seconds or a duration
    (``2h``); ``days``: the hole window; ``streams`` reads which streams run (without
    it the stream column of a streamed dataset is ``unknown``).
    """
    stale_after_s = parse_duration_s(stale_after)
    if days < 1:
        raise ConfigError(f"days must be >= 1, got {days}")
    loaded = catalog if isinstance(catalog, Catalog) else _load_catalog(catalog)
    store = Store(root if root is not None else loaded.store_root)
    now = now_ns() if now_ts is None else now_ts
    running: Mapping[DatasetKey, bool] | None = None
    reach = "unknown (not asked)"
    if streams is not None and any(spec.stream for spec in loaded.datasets):
        running, reach = streams(loaded)
    results = []
    for spec in loaded.datasets:
        if not spec.stream:
            stream = "-"
        elif running is None:
            stream = "unknown"
        else:
            stream = "running" if running.get(spec.key, False) else "stopped"
        results.append(
            status_of(
                store,
                spec.key,
                now_ts=now,
                stale_after_s=stale_after_s,
                days=days,
                since_ts=spec.start_ts,
                stream=stream,
            )
        )
    return StatusReport(tuple(results), now, stale_after_s, days, store.root, reach)


def status_lines(report: StatusReport) -> list[str]:
    """The table ``dccd status`` prints."""
    header = ("exchange", "symbol", "type", "span", "state", "last", "age", "holes", "missing",
              "stream")
    rows: list[Sequence[str]] = [header]
    for d in report.datasets:
        stored = d.state != "missing"
        rows.append(
            (
                d.key.exchange,
                str(d.key.symbol),
                d.key.data_type.value,
                d.key.span.label if d.key.span else "-",
                d.state,
                iso_datetime(d.last_ts) if d.last_ts is not None else "-",
                _short(d.age_s) if d.age_s is not None else "-",
                str(d.holes) if stored else "-",
                _short(d.missing_s) if stored and d.holes else "-",
                d.stream,
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    bad = [d for d in report.datasets if d.state != "fresh"]
    lines.append(
        f"{len(report.datasets) - len(bad)} fresh, "
        f"{sum(d.state == 'stale' for d in bad)} stale, "
        f"{sum(d.state == 'missing' for d in bad)} missing (stale after "
        f"{_short(report.stale_after_s)}; holes of the last {report.days} days; "
        f"dagster: {report.dagster})"
    )
    return lines


def _short(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3_600:
        return f"{s // 60}m"
    if s < 86_400:
        minutes = (s % 3_600) // 60
        return f"{s // 3_600}h{minutes:02d}m" if minutes else f"{s // 3_600}h"
    hours = (s % 86_400) // 3_600
    return f"{s // 86_400}d{hours:02d}h" if hours else f"{s // 86_400}d"
