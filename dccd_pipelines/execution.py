"""What an asset run does, as plain functions testable without Dagster.

An asset body (``assets.py``) only translates Dagster's partition range into a time
window (``partition_window``), calls ``run_backfill`` and turns the ``RunSummary``
(``summary.py``) into metadata (``metadata.py``). Everything here takes plain values (ns
timestamps, a ``Store``, a log callable), so it can be exercised from a notebook or a
unit test. Progress in the run log: ``progress.py``.

The core's backfill result reaches this layer in ONE place: ``run_backfill`` returns
it and ``counters_of`` reads it into ``RunCounters``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from dccd_core.domain import NS_PER_DAY, ConfigError, iso_datetime, now_ns, to_ns

from .progress import PROGRESS_INTERVAL_S, ProgressLog, format_progress
from .summary import DaySummary, RunCounters, RunSummary, markdown_table, summarize

if TYPE_CHECKING:
    from dccd_core.catalog import DatasetSpec
    from dccd_core.operations.backfill import BackfillResult
    from dccd_core.sources.base import Source
    from dccd_core.storage import Store

    #: ``dccd_core.operations.backfill.backfill``'s shape, as this layer calls it.
    BackfillFn = Callable[..., Awaitable[BackfillResult]]

__all__ = [
    "PROGRESS_INTERVAL_S",
    "DaySummary",
    "ProgressLog",
    "RunCounters",
    "RunSummary",
    "counters_of",
    "format_progress",
    "load_backfill",
    "markdown_table",
    "partition_window",
    "run_backfill",
    "summarize",
]



def partition_window(first_day: str, last_day: str, now_ts: int | None = None) -> tuple[int, int]:
    """[start of ``first_day``, end of ``last_day``) in ns, the end clipped to now.

    Daily partition keys are ``YYYY-MM-DD`` (UTC); today's partition is in progress, so
    its window ends now, not at midnight.
    """
    start_ts = to_ns(first_day)
    end_ts = to_ns(last_day) + NS_PER_DAY
    now = now_ns() if now_ts is None else now_ts
    end_ts = min(end_ts, now)
    if end_ts <= start_ts:
        raise ConfigError(
            f"partition range {first_day}...{last_day} starts in the future; pick days up to today"
        )
    return start_ts, end_ts


def load_backfill() -> BackfillFn:
    """``dccd_core.operations.backfill.backfill`` (a seam: tests may swap it)."""
    from dccd_core.operations.backfill import backfill

    return backfill


def run_backfill(
    spec: DatasetSpec,
    start_ts: int,
    end_ts: int,
    store: Store,
    log: Callable[[str], None],
    *,
    interval_s: float = PROGRESS_INTERVAL_S,
    source: Source | None = None,
) -> BackfillResult:
    """Fetch ``[start_ts, end_ts)`` of ``spec`` into ``store`` (committed in bounded chunks
    by the backfill itself) and return its ``BackfillResult``. The dataset's
    ``archives`` mode and the exchange's ``archive_url`` go to the backfill, which
    reads the archive files first where the exchange publishes them."""
    backfill = load_backfill()
    reporter = ProgressLog(log, label=str(spec.key), interval_s=interval_s)

    async def main() -> BackfillResult:
        src = source
        if src is None and (spec.rest_url or spec.ws_url):
            from dccd_core.sources.registry import build_source

            src = build_source(spec.key.exchange, rest_url=spec.rest_url, ws_url=spec.ws_url)
        beat = asyncio.create_task(reporter.heartbeat())
        try:
            return await backfill(
                spec.key,
                start=start_ts,
                end=end_ts,
                store=store,
                source=src,
                progress=reporter,
                archives=spec.archives,
                archive_url=spec.archive_url,
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if source is None and src is not None:  # ours to close (backfill closes its own)
                await src.aclose()

    log(f"{spec.key}: backfill {iso_datetime(start_ts)} -> {iso_datetime(end_ts)}")
    return asyncio.run(main())


def counters_of(result: BackfillResult) -> RunCounters:
    """The run's counters from the core's backfill result."""
    return RunCounters(
        rows_fetched=result.rows_fetched,
        rows_new=result.rows_new,
        requests=result.requests,
        retries=result.retries,
        rate_limit_pauses=result.rate_limit_pauses,
        files=tuple(str(path) for path in result.files),
        archive_files_total=result.archive_files_total,
        archive_files_done=result.archive_files_done,
        archive_rows=result.archive_rows,
        rest_rows=result.rest_rows,
        archive_fallbacks=tuple(str(f) for f in result.fallbacks),
        uncovered=result.uncovered,
    )
