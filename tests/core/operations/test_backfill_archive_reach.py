"""REST's history depth against the archive files' reach (``backfill.reach``).

Bybit's REST keeps only its latest trades (``recent_only``), but its daily files hold
every closed day of the perpetuals: a backfill of past days is served from the files,
and only what neither the files nor REST can serve is left uncovered (named in the
result) or, when that is the whole request, refused before any request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dccd_core.domain import NS_PER_DAY, DatasetKey, NoCapability, iso_datetime, now_ns, to_ns
from dccd_core.operations.backfill import backfill
from dccd_core.operations.backfill.archive_plan import ArchivePlanner
from dccd_core.operations.backfill.report import BackfillTracker
from dccd_core.sources.archives.mode import ArchiveMode
from dccd_core.sources.registry import build_source
from dccd_core.storage import Store
from dccd_core.storage.archive_ledger import read_archive_ledger
from dccd_core.transport.paginate import Chunk, PageStats
from tests.core.operations.test_backfill_archive_plan import CANDLES, TruthArchive, _fake
from tests.fakes.archives import FakeArchives, archive_reader_on
from tests.fakes.bybit import FakeBybit, make_app
from tests.fakes.kit import fast_source_on

LINEAR = DatasetKey.of("bybit", "BTC/USDT:USDT", "trades")
# the fake's tapes start at 2024-02-29T21:37 and run past midnight
START, END = to_ns("2024-02-29"), to_ns("2024-03-02")


def _trade_requests(bybit: FakeBybit) -> list[str]:
    return [path for path, _ in bybit.requests if "trade" in path]


async def _run(
    tmp_path: Any, fake: FakeArchives, start: int, end: int | None, mode: str = "auto"
) -> Any:
    assert fake.bybit is not None
    async with archive_reader_on("bybit", fake) as reader, fast_source_on(
        "bybit", make_app(fake.bybit)
    ) as source:
        return await backfill(
            LINEAR, start=start, end=end, store=Store(tmp_path), source=source,
            archives=mode, archive_reader=reader,
        )


async def test_past_days_come_from_the_files_although_rest_keeps_no_history(
    tmp_path: Any,
) -> None:
    bybit = FakeBybit()
    result = await _run(tmp_path, FakeArchives(bybit=bybit), START, END)
    truth = bybit.truth_trades(LINEAR.symbol, START, END)
    stored = Store(tmp_path).read(LINEAR)
    assert truth.height > 500
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))
    assert result.complete and result.archive_files_done == 2 and result.rest_rows == 0
    assert _trade_requests(bybit) == []  # REST was never asked for history
    assert Store(tmp_path).holes(LINEAR, START, END) == []
    assert [e.name for e in read_archive_ledger(Store(tmp_path).root, LINEAR)] == [
        "BTCUSDT2024-02-29.csv.gz",
        "BTCUSDT2024-03-01.csv.gz",
    ]


async def test_an_unusable_day_rest_cannot_serve_is_left_uncovered(tmp_path: Any) -> None:
    bybit = FakeBybit()
    fake = FakeArchives(bybit=bybit, missing={"BTCUSDT2024-03-01.csv.gz"})
    result = await _run(tmp_path, fake, START, END)
    day = to_ns("2024-03-01")
    truth = bybit.truth_trades(LINEAR.symbol, START, day)
    stored = Store(tmp_path).read(LINEAR)
    assert stored.sort("trade_id").equals(truth.sort("trade_id").select(stored.columns))
    assert result.uncovered == ((day, END),) and not result.complete
    [fallback] = result.fallbacks
    assert fallback.file == "BTCUSDT2024-03-01.csv.gz" and not fallback.rest
    assert _trade_requests(bybit) == []
    assert Store(tmp_path).holes(LINEAR, START, END) == [(day, END)]


async def test_the_unpublished_tail_is_left_uncovered_not_refused(tmp_path: Any) -> None:
    """Days up to now: the closed days' files are read, the days not published yet
    (REST reaching no further back than its latest page) are named as uncovered."""
    bybit = FakeBybit()
    today = now_ns() // NS_PER_DAY * NS_PER_DAY
    start, end = today - 3 * NS_PER_DAY, today + NS_PER_DAY // 2
    fake = FakeArchives(bybit=bybit)
    result = await _run(tmp_path, fake, start, min(end, now_ns()))
    published_end = today - NS_PER_DAY  # lag_days=1
    assert result.archive_files_done == 2
    [(a, b)] = result.uncovered
    assert a == published_end and b == result.end_ts and not result.complete
    assert _trade_requests(bybit) == []


async def test_a_window_neither_can_serve_is_refused_before_any_request(
    tmp_path: Any,
) -> None:
    bybit = FakeBybit()
    start = now_ns() - 3_600 * 10**9
    with pytest.raises(NoCapability, match="can be served neither") as caught:
        await _run(tmp_path, FakeArchives(bybit=bybit), start, None)
    assert "recent page only" in str(caught.value)
    assert "stream" in str(caught.value)  # the capability's alternative
    assert _trade_requests(bybit) == []


async def test_without_archives_rest_history_is_refused_as_before(tmp_path: Any) -> None:
    bybit = FakeBybit()
    with pytest.raises(NoCapability, match="only the most recent trades"):
        await _run(tmp_path, FakeArchives(bybit=bybit), START, END, mode="off")
    assert bybit.requests == []


async def test_only_mode_is_not_limited_by_rest_depth(tmp_path: Any) -> None:
    bybit = FakeBybit()
    result = await _run(tmp_path, FakeArchives(bybit=bybit), START, END, mode="only")
    truth = bybit.truth_trades(LINEAR.symbol, START, END)
    assert result.complete and Store(tmp_path).read(LINEAR).height == truth.height


@settings(max_examples=25, deadline=None)
@given(
    broken=st.dictionaries(
        st.integers(0, 3), st.sampled_from(["missing", "truncated"]), max_size=4
    ),
    published_days=st.integers(0, 4),
    rest_from_min=st.one_of(st.none(), st.integers(0, 5 * 1440)),
)
def test_planner_splits_each_window_at_rests_reach(
    broken: dict[int, str], published_days: int, rest_from_min: int | None
) -> None:
    """Over 5 days of 1m candles with some files unusable and REST reaching back only to
    ``rest_from``: REST is asked only for windows after its reach, the windows left
    uncovered end at or before it, and every true row outside the uncovered windows is
    delivered (no row that is not true)."""
    fake = _fake()
    start = to_ns("2024-02-10")
    days = [start + i * NS_PER_DAY for i in range(6)]
    end = days[5]
    names = [f"BTCUSDT-ohlc-{d[:10]}.zip" for d in map(iso_datetime, days)]
    reader = TruthArchive(
        fake, published_until=days[published_days],
        broken={names[i]: how for i, how in broken.items()}, batch_rows=500,
    )
    rest_from = None if rest_from_min is None else start + rest_from_min * 60 * 10**9
    asked: list[tuple[int, int]] = []

    async def rest(a: int, b: int, stats: PageStats) -> AsyncGenerator[Chunk, None]:
        asked.append((a, b))
        yield Chunk(fake.truth_candles(a, b), a, b)

    async def main() -> tuple[list[Chunk], list[tuple[int, int]]]:
        source = build_source("binance")
        try:
            run = BackfillTracker(CANDLES, source, start, end, None)
            planner = ArchivePlanner(
                CANDLES, reader, ArchiveMode.AUTO, run, end + NS_PER_DAY, rest,
                rest_from_ts=rest_from, rest_gap="REST keeps less",
            )
            chunks = [c async for c in planner.chunks()]
            return chunks, list(run.archive.uncovered)
        finally:
            await source.aclose()

    chunks, uncovered = asyncio.run(main())
    if rest_from is not None:
        assert all(a >= rest_from for a, _ in asked)
        assert all(b <= rest_from for _, b in uncovered)
    else:
        assert uncovered == []
    rows = pl.concat([c.rows for c in chunks if c.rows.height]).unique("ts").sort("ts")
    truth = fake.truth_candles(start, end)
    outside = truth.filter(
        ~pl.any_horizontal(
            [(pl.col("ts") >= a) & (pl.col("ts") < b) for a, b in uncovered] or [pl.lit(False)]
        )
    )
    # every row outside the uncovered windows, each once; inside them only true rows
    # (a broken file's last good row opens its uncovered window: coverage stops before
    # its ts, where more rows of the same ts could have followed)
    assert rows.join(truth, on=rows.columns, how="anti").height == 0
    assert outside.join(rows, on="ts", how="anti").height == 0
    assert rows.height - outside.height <= len(broken)
