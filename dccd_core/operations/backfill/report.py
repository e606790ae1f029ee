"""What a backfill tells its caller: progress while it runs, the result at the end,
and the counters behind both.

Its own module so the two records (read by the pipelines, the CLI and the bench) can
be imported and built without the run; ``BackfillResult`` is the typed result every
caller consumes (``dccd_pipelines`` summarizes it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dccd_core.domain import DatasetKey, iso_datetime
from dccd_core.sources.base import Source
from dccd_core.storage import WriteResult
from dccd_core.transport.paginate import PageStats

__all__ = [
    "ArchiveCounters",
    "ArchiveFallback",
    "BackfillProgress",
    "BackfillResult",
    "BackfillTracker",
]


@dataclass(frozen=True, slots=True)
class ArchiveFallback:
    """An archive file that could not be used, and what became of its window:
    ``[start_ts, end_ts)`` is the part not read from the file (all of it when the file
    was missing; the rest after the last good row when it broke off); ``rest`` says it
    was fetched over REST instead (``archives: auto``, at least its part REST reaches)
    or left uncovered (``only``, or older than REST's history)."""

    file: str
    reason: str
    start_ts: int
    end_ts: int
    rest: bool

    def __str__(self) -> str:
        fate = "fetched over REST" if self.rest else "left uncovered"
        return (
            f"{self.file}: {self.reason}; {iso_datetime(self.start_ts)} -> "
            f"{iso_datetime(self.end_ts)} {fate}"
        )


@dataclass(slots=True)
class ArchiveCounters:
    """What the archive planner did so far (read by progress reports and the result)."""

    files_total: int = 0
    files_done: int = 0
    archive_rows: int = 0
    rest_rows: int = 0
    fallbacks: list[ArchiveFallback] = field(default_factory=list)
    #: windows nobody fetched (``archives: only``, or older than REST reaches and in
    #: no usable file): holes the checks will report
    uncovered: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """A progress report; ``windows_*`` count page windows (candles) or time segments
    (trades), ``covered_until_ts`` is how far the committed-or-committing data reaches."""

    key: DatasetKey
    start_ts: int
    end_ts: int
    windows_done: int
    windows_total: int
    covered_until_ts: int | None
    rows_fetched: int
    rows_per_s: float
    eta_s: float | None
    requests: int
    retries: int
    rate_limit_pauses: int
    elapsed_s: float
    #: time of the range the pages fetched so far cover (ns), whichever way it is paged
    done_ns: int = 0
    #: archive files read to their end (verified) / planned; 0/0 when none are used
    archive_files_done: int = 0
    archive_files_total: int = 0
    archive_rows: int = 0
    rest_rows: int = 0
    fallbacks: int = 0

    @property
    def fraction(self) -> float:
        """Share of the time range covered, 0..1: rises page by page (also for trades
        paged by id or newest-first), not window by window."""
        if self.end_ts <= self.start_ts:
            return 0.0 if self.covered_until_ts is None else 1.0
        done_ns = self.done_ns
        if self.covered_until_ts is not None:
            done_ns = max(done_ns, self.covered_until_ts - self.start_ts)
        return min(1.0, max(0.0, done_ns / (self.end_ts - self.start_ts)))

    def __str__(self) -> str:
        until = iso_datetime(self.covered_until_ts) if self.covered_until_ts else "-"
        eta = f"{self.eta_s:.0f}s" if self.eta_s is not None else "?"
        files = ""
        if self.archive_files_total:
            files = (
                f"archive files {self.archive_files_done}/{self.archive_files_total} "
                f"({self.archive_rows:,} archive rows, {self.rest_rows:,} REST rows, "
                f"{self.fallbacks} fallbacks), "
            )
        return (
            f"{self.key}: {100 * self.fraction:.1f}% of the time range, {files}"
            f"windows {self.windows_done}/{self.windows_total}, covered until "
            f"{until}, {self.rows_fetched:,} rows ({self.rows_per_s:,.0f}/s), ETA {eta}, "
            f"{self.requests} requests, {self.retries} retries, "
            f"{self.rate_limit_pauses} rate-limit pauses"
        )


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What a backfill did."""

    rows_fetched: int
    rows_new: int
    requests: int
    retries: int
    rate_limit_pauses: int
    start_ts: int
    end_ts: int
    files: tuple[Path, ...]
    #: archive files planned for the range, and those read and verified to their end
    archive_files_total: int = 0
    archive_files_done: int = 0
    #: rows that came from archive files / over REST (``rows_fetched`` is their sum
    #: when archives were planned; REST-only runs leave both 0)
    archive_rows: int = 0
    rest_rows: int = 0
    #: archive files that could not be used, with the reason and what became of them
    fallbacks: tuple[ArchiveFallback, ...] = ()
    #: ``[start, end)`` windows left unfetched (``archives: only``, or beyond both the
    #: files and REST's history): not complete
    uncovered: tuple[tuple[int, int], ...] = ()

    @property
    def complete(self) -> bool:
        """True when every part of ``[start_ts, end_ts)`` was fetched by some source."""
        return not self.uncovered


class BackfillTracker:
    """Tracks one backfill as it runs: its counters, its progress reports and, at the
    end, its ``BackfillResult`` (the pipelines' ``RunCounters`` is that result's record)."""

    def __init__(
        self,
        key: DatasetKey,
        source: Source,
        start_ts: int,
        end_ts: int,
        progress: Callable[[BackfillProgress], None] | None,
    ) -> None:
        self.key = key
        self.source = source
        self.start_ts = start_ts
        self.end_ts = end_ts
        self.progress = progress
        self.pages = PageStats()
        self.archive = ArchiveCounters()
        self.rows = 0
        self.started = time.monotonic()
        self._http_stats = source.http_stats
        self._base = self._http_counts()

    def _http_counts(self) -> tuple[int, int, int]:
        stats = self._http_stats
        if stats is None:
            return (0, 0, 0)
        return (stats.requests, stats.retries, stats.rate_limit_pauses)

    def count_from_now(self) -> None:
        """Count requests from now on: the run's own requests begin here (the symbol
        listing asked beside the first archive downloads is not one of them)."""
        self._base = self._http_counts()

    def counts(self) -> tuple[int, int, int]:
        """(requests, retries, rate-limit pauses) since the run began."""
        now = self._http_counts()
        requests = now[0] - self._base[0] if self._http_stats is not None else self.pages.requests
        return requests, now[1] - self._base[1], now[2] - self._base[2]

    def snapshot(self) -> BackfillProgress:
        elapsed = time.monotonic() - self.started
        requests, retries, pauses = self.counts()
        covered = self.pages.covered_until_ts
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        done_ns = self.pages.done_ns
        if covered is not None:
            done_ns = max(done_ns, covered - self.start_ts)
        eta: float | None = None
        if done_ns > 0 and elapsed > 0:
            done = min(1.0, done_ns / max(1, self.end_ts - self.start_ts))
            eta = elapsed * (1 - done) / done
        return BackfillProgress(
            key=self.key,
            start_ts=self.start_ts,
            end_ts=self.end_ts,
            windows_done=self.pages.windows_done,
            windows_total=self.pages.windows_total,
            covered_until_ts=covered,
            rows_fetched=self.rows,
            rows_per_s=rate,
            eta_s=eta,
            requests=requests,
            retries=retries,
            rate_limit_pauses=pauses,
            elapsed_s=elapsed,
            done_ns=done_ns,
            archive_files_done=self.archive.files_done,
            archive_files_total=self.archive.files_total,
            archive_rows=self.archive.archive_rows,
            rest_rows=self.archive.rest_rows,
            fallbacks=len(self.archive.fallbacks),
        )

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.snapshot())

    async def ticker(self, interval_s: float) -> None:
        """Report at least every ``interval_s``, also while a page is stuck in a pause."""
        while True:
            await asyncio.sleep(interval_s)
            self.report()

    def result(self, written: WriteResult, start_ts: int, end_ts: int) -> BackfillResult:
        """The run's result, once ``written`` is committed."""
        requests, retries, pauses = self.counts()
        return BackfillResult(
            rows_fetched=self.rows,
            rows_new=written.new_rows,
            requests=requests,
            retries=retries,
            rate_limit_pauses=pauses,
            start_ts=start_ts,
            end_ts=end_ts,
            files=written.files,
            archive_files_total=self.archive.files_total,
            archive_files_done=self.archive.files_done,
            archive_rows=self.archive.archive_rows,
            rest_rows=self.archive.rest_rows,
            fallbacks=tuple(self.archive.fallbacks),
            uncovered=tuple(self.archive.uncovered),
        )
