"""The archive-first planner against an in-test archive reader and the fake Binance REST.

The reader (``TruthArchive``) serves the fake exchange's own truth as monthly and daily
files, some of them made unusable on purpose (missing, bad checksum, truncated half
way); whatever mix of archive files and REST delivered the rows, the store must equal
the truth, hold no row twice, and under ``archives: only`` leave exactly the
unavailable windows as holes. The real Binance reader against the fake archive server
is ``tests/core/operations/test_backfill_archives_readers.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dccd_core.domain import (
    NS_PER_DAY,
    NS_PER_MS,
    ArchiveGranularity,
    ConfigError,
    DatasetKey,
    UnknownSymbol,
    to_ns,
)
from dccd_core.operations.backfill import backfill
from dccd_core.sources.archives.base import (
    ArchiveFile,
    ArchiveRead,
    ArchiveReader,
    ArchiveUnavailable,
    IngestedFile,
)
from dccd_core.storage import Store
from dccd_core.storage.archive_ledger import read_archive_ledger
from dccd_core.storage.files import read_footer
from dccd_core.storage.layout import list_period_files
from tests.fakes.binance import FakeBinance, MarketData
from tests.fakes.kit import fast_source_on

LISTING = "2024-01-01"
LISTING_MS = to_ns(LISTING) // NS_PER_MS
SHA = "ab" * 32


def _fake(trade_every_ms: int = 10_000) -> FakeBinance:
    """Binance spot BTCUSDT with 1m bars and a trade every 10 s (small days, many pages)."""
    market = MarketData(7, LISTING_MS, den=trade_every_ms, burst_every=5_000, burst_len=40)
    return FakeBinance(markets={("spot", "BTCUSDT"): market}, weight_limit=10**9)


CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")
TRADES = DatasetKey.of("binance", "BTC/USDT", "trades")


def _day(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1e9, UTC)


class TruthArchive(ArchiveReader):
    """Monthly files for whole months, daily files for other whole days, up to
    ``published_until``; each file holds the fake's truth of its window, served in
    batches of ``batch_rows``. ``broken[name]``: ``missing``, ``checksum`` (refused
    before the first row) or ``truncated`` (half the rows, then refused)."""

    def __init__(
        self,
        fake: FakeBinance,
        published_until: int,
        broken: dict[str, str] | None = None,
        batch_rows: int = 3_000,
    ) -> None:
        super().__init__("http://archive.invalid")
        self.fake = fake
        self.published_until = published_until
        self.broken = broken or {}
        self.batch_rows = batch_rows
        self.reads: list[str] = []
        self.closed = False

    def plan_files(
        self, key: DatasetKey, start_ts: int, end_ts: int, now_ts: int
    ) -> list[ArchiveFile]:
        end = min(end_ts, self.published_until)
        files: list[ArchiveFile] = []
        day = _day(start_ts).replace(hour=0, minute=0, second=0, microsecond=0)
        if to_ns(day) < start_ts:
            day += timedelta(days=1)
        while to_ns(day + timedelta(days=1)) <= end:
            month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
            if day.day == 1 and to_ns(month_end) <= end:
                name = f"BTCUSDT-{key.data_type}-{day:%Y-%m}.zip"
                files.append(self._file(name, day, month_end, ArchiveGranularity.MONTHLY))
                day = month_end
                continue
            name = f"BTCUSDT-{key.data_type}-{day:%Y-%m-%d}.zip"
            nxt = day + timedelta(days=1)
            files.append(self._file(name, day, nxt, ArchiveGranularity.DAILY))
            day = nxt
        return files

    @staticmethod
    def _file(name: str, a: datetime, b: datetime, g: ArchiveGranularity) -> ArchiveFile:
        return ArchiveFile(name, f"/data/{name}", f"/data/{name}.CHECKSUM", to_ns(a), to_ns(b), g)

    def _truth(self, key: DatasetKey, a: int, b: int) -> pl.DataFrame:
        if key.span is not None:
            return self.fake.truth_candles(a, b, str(key.span))
        return self.fake.truth_trades(a, b)

    def read(self, key: DatasetKey, file: ArchiveFile) -> ArchiveRead:
        return ArchiveRead(file, self._steps(key, file))

    async def _steps(
        self, key: DatasetKey, file: ArchiveFile
    ) -> AsyncGenerator[pl.DataFrame | IngestedFile, None]:
        self.reads.append(file.name)
        how = self.broken.get(file.name)
        if how == "missing":
            raise ArchiveUnavailable(file.name, "missing (404)")
        if how == "checksum":
            raise ArchiveUnavailable(file.name, "sha256 differs from the published checksum")
        rows = self._truth(key, file.start_ts, file.end_ts)
        n = rows.height // 2 if how == "truncated" else rows.height
        for i in range(0, n, self.batch_rows):
            await asyncio.sleep(0)
            yield rows.slice(i, min(self.batch_rows, n - i))
        if how == "truncated":
            raise ArchiveUnavailable(file.name, "truncated zip")
        yield IngestedFile(file, SHA, SHA, rows.height)

    async def fetch_published_sha256(self, file: ArchiveFile) -> str | None:
        return SHA

    async def aclose(self) -> None:
        self.closed = True


def _assert_exact(store: Store, key: DatasetKey, truth: pl.DataFrame) -> None:
    """Stored rows equal the truth, each once."""
    stored = store.read(key)
    natural = "ts" if key.span is not None else "trade_id"
    assert stored.get_column(natural).n_unique() == stored.height  # no row twice
    order = [natural]
    assert stored.sort(order).equals(truth.sort(order).select(stored.columns))


def _footers(store: Store, key: DatasetKey) -> dict[str, dict[str, str]]:
    out = {}
    for f in list_period_files(store.root, key):
        raw = read_footer(f.path).metadata or {}
        out[f.period] = {
            k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW")
        }
    return out


async def _run(
    fake: FakeBinance, store: Store, key: DatasetKey, reader: ArchiveReader, start: int, end: int,
    mode: str = "auto", **kwargs: Any,
) -> Any:
    async with fast_source_on("binance", fake.app()) as source:
        return await backfill(
            key, start=start, end=end, store=store, source=source, archives=mode,
            archive_reader=reader, **kwargs,
        )


async def test_candles_months_then_days_then_rest_tail(tmp_path: Any) -> None:
    fake = _fake()
    store = Store(tmp_path)
    start, end = to_ns("2024-01-01"), to_ns("2024-03-06T12:00:00")
    reader = TruthArchive(fake, published_until=to_ns("2024-03-04"))
    reports: list[Any] = []
    result = await _run(fake, store, CANDLES, reader, start, end, progress=reports.append)
    truth = fake.truth_candles(start, end)
    _assert_exact(store, CANDLES, truth)
    # Jan, Feb monthly; Mar 1..3 daily; the REST tail Mar 4 -> Mar 6 12:00
    assert reader.reads == [
        "BTCUSDT-ohlc-2024-01.zip",
        "BTCUSDT-ohlc-2024-02.zip",
        "BTCUSDT-ohlc-2024-03-01.zip",
        "BTCUSDT-ohlc-2024-03-02.zip",
        "BTCUSDT-ohlc-2024-03-03.zip",
    ]
    assert result.archive_files_total == result.archive_files_done == 5
    tail = fake.truth_candles(to_ns("2024-03-04"), end)
    assert result.rest_rows == tail.height
    assert result.archive_rows == truth.height - tail.height
    assert result.rows_new == truth.height and result.complete and not result.fallbacks
    assert fake.requests["klines"] == -(-(int(2.5 * 1440)) // 1000)  # the tail only
    assert store.holes(CANDLES, start, end) == []
    footers = _footers(store, CANDLES)
    assert footers["2024-01"]["transport"] == "archive"
    assert footers["2024-01"]["archive_files"] == "BTCUSDT-ohlc-2024-01.zip"
    assert footers["2024-03"]["transport"] == "archive+rest"
    ledger = read_archive_ledger(store.root, CANDLES)
    assert [e.name for e in ledger] == reader.reads
    assert ledger[0].sha256 == SHA and ledger[0].rows == fake.truth_candles(
        to_ns("2024-01-01"), to_ns("2024-02-01")
    ).height
    assert reports[-1].archive_files_done == reports[-1].archive_files_total == 5
    assert "archive files 5/5" in str(reports[-1])


@pytest.mark.parametrize("how", ["missing", "checksum", "truncated"])
async def test_trades_unusable_day_falls_back_to_rest_for_its_window(
    tmp_path: Any, how: str
) -> None:
    fake = _fake()
    store = Store(tmp_path)
    start, end = to_ns("2024-01-10"), to_ns("2024-01-14")
    bad = "BTCUSDT-trades-2024-01-12.zip"
    reader = TruthArchive(fake, published_until=end, broken={bad: how})
    result = await _run(fake, store, TRADES, reader, start, end)
    truth = fake.truth_trades(start, end)
    _assert_exact(store, TRADES, truth)
    assert result.rows_new == truth.height
    assert result.archive_files_total == 4 and result.archive_files_done == 3
    [fallback] = result.fallbacks
    assert fallback.file == bad and fallback.rest and fallback.end_ts == to_ns("2024-01-13")
    day = fake.truth_trades(to_ns("2024-01-12"), to_ns("2024-01-13"))
    if how == "truncated":  # the rows read stay; REST from the last one read
        assert fallback.start_ts == int(day.get_column("ts")[day.height // 2 - 1])
        assert result.rest_rows < day.height
    else:
        assert fallback.start_ts == to_ns("2024-01-12")
        assert result.rest_rows == day.height
    assert fake.requests["aggTrades"] >= 1
    assert store.holes(TRADES, start, end) == []
    assert bad not in {e.name for e in read_archive_ledger(store.root, TRADES)}
    assert _footers(store, TRADES)["2024-01-12"]["transport"] == (
        "archive+rest" if how == "truncated" else "rest"
    )
    assert _footers(store, TRADES)["2024-01-11"]["transport"] == "archive"


async def test_only_mode_leaves_the_unusable_window_uncovered_and_says_so(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _fake()
    store = Store(tmp_path)
    start, end = to_ns("2024-01-10"), to_ns("2024-01-14")
    reader = TruthArchive(
        fake,
        published_until=to_ns("2024-01-13"),
        broken={"BTCUSDT-trades-2024-01-11.zip": "truncated"},
    )
    result = await _run(fake, store, TRADES, reader, start, end, mode="only")
    assert fake.requests["aggTrades"] == 0  # no REST at all
    day = fake.truth_trades(to_ns("2024-01-11"), to_ns("2024-01-12"))
    cut = int(day.get_column("ts")[day.height // 2 - 1])
    expected = [(cut, to_ns("2024-01-12")), (to_ns("2024-01-13"), end)]
    assert list(result.uncovered) == expected and not result.complete
    assert store.holes(TRADES, start, end) == expected
    stored = store.read(TRADES)
    kept = pl.concat([
        fake.truth_trades(start, to_ns("2024-01-11")),
        day.head(day.height // 2),  # read before the file broke off: kept
        fake.truth_trades(to_ns("2024-01-12"), to_ns("2024-01-13")),
    ])
    assert stored.sort("trade_id").equals(kept.sort("trade_id").select(stored.columns))
    assert "left uncovered" in caplog.text and "NOT complete" in caplog.text


async def test_off_mode_is_rest_only(tmp_path: Any) -> None:
    fake = _fake()
    store = Store(tmp_path)
    start, end = to_ns("2024-01-10"), to_ns("2024-01-11")
    reader = TruthArchive(fake, published_until=end)
    result = await _run(fake, store, TRADES, reader, start, end, mode="off")
    assert reader.reads == [] and result.archive_files_total == 0
    _assert_exact(store, TRADES, fake.truth_trades(start, end))
    assert _footers(store, TRADES)["2024-01-10"]["transport"] == "rest"


async def test_only_mode_without_archives_is_refused_before_any_request(tmp_path: Any) -> None:
    fake = _fake()
    store = Store(tmp_path)
    with pytest.raises(ConfigError, match="archives: only"):
        async with fast_source_on("coinbase", fake.app()) as source:
            await backfill(
                DatasetKey.of("coinbase", "BTC/USD", "ohlc", "1m"), start=to_ns("2024-01-01"),
                end=to_ns("2024-01-02"), store=store, source=source, archives="only",
            )
    assert fake.requests.total() == 0
    with pytest.raises(ConfigError, match="not a mode"):
        await backfill(CANDLES, start=to_ns("2024-01-01"), store=store, archives="sometimes")


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    broken=st.dictionaries(
        st.integers(0, 5), st.sampled_from(["missing", "checksum", "truncated"]), max_size=6
    ),
    tail_days=st.integers(0, 2),
)
def test_auto_any_unavailable_subset_stores_exactly_the_truth(
    broken: dict[int, str], tail_days: int
) -> None:
    fake = _fake(trade_every_ms=40_000)
    start, end = to_ns("2024-01-29"), to_ns("2024-02-04")  # Jan 29..31 daily, Feb 1..3
    names = [f"BTCUSDT-trades-2024-{d}.zip" for d in
             ("01-29", "01-30", "01-31", "02-01", "02-02", "02-03")]
    reader = TruthArchive(
        fake,
        published_until=end - tail_days * NS_PER_DAY,
        broken={names[i]: how for i, how in broken.items()},
        batch_rows=2_000,
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        result = asyncio.run(_run(fake, store, TRADES, reader, start, end))
        truth = fake.truth_trades(start, end)
        _assert_exact(store, TRADES, truth)
        assert store.holes(TRADES, start, end) == []
        planned = 6 - tail_days
        failed = {names[i] for i in broken if i < planned}
        assert result.archive_files_total == planned
        assert result.archive_files_done == planned - len(failed)
        assert {f.file for f in result.fallbacks} == failed
        ledger = {e.name for e in read_archive_ledger(store.root, TRADES)}
        assert ledger == set(names[:planned]) - failed


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(missing=st.sets(st.integers(0, 5)), how=st.sampled_from(["missing", "checksum"]))
def test_only_holes_are_exactly_the_unavailable_files(missing: set[int], how: str) -> None:
    fake = _fake()
    start = to_ns("2024-01-29")
    days = [start + i * NS_PER_DAY for i in range(7)]
    names = [f"BTCUSDT-ohlc-{_day(d):%Y-%m-%d}.zip" for d in days[:6]]
    reader = TruthArchive(fake, published_until=days[6], broken={names[i]: how for i in missing})
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        result = asyncio.run(_run(fake, store, CANDLES, reader, start, days[6], mode="only"))
        assert fake.requests["klines"] == 0
        holes: list[tuple[int, int]] = []
        for i in sorted(missing):  # adjacent unavailable days make one hole
            if holes and holes[-1][1] == days[i]:
                holes[-1] = (holes[-1][0], days[i + 1])
            else:
                holes.append((days[i], days[i + 1]))
        assert store.holes(CANDLES, start, days[6]) == holes
        assert result.complete == (not missing)
        served = [(days[i], days[i + 1]) for i in range(6) if i not in missing]
        truth = pl.concat([fake.truth_candles(a, b) for a, b in served]) if served else None
        if truth is not None:
            _assert_exact(store, CANDLES, truth)
        else:
            assert store.read(CANDLES).height == 0


async def test_an_unknown_symbol_is_refused_and_nothing_stored_though_files_were_asked(
    tmp_path: Any,
) -> None:
    """The symbol listing is asked while the first archive files are requested (one
    round trip less before the first row): an unknown symbol still ends the run with
    ``UnknownSymbol``, before any row, coverage or REST data request."""
    fake = _fake()
    store = Store(tmp_path)
    start, end = to_ns("2024-01-01"), to_ns("2024-01-03")
    reader = TruthArchive(fake, published_until=to_ns("2024-02-01"))
    doge = DatasetKey.of("binance", "DOGE/USDT", "trades")
    with pytest.raises(UnknownSymbol, match="does not list DOGE/USDT"):
        await _run(fake, store, doge, reader, start, end)
    with pytest.raises(UnknownSymbol, match="does not list DOGE/USDT"):
        await _run(fake, store, doge, reader, start, start)  # an empty window too
    assert fake.data_requests == 0
    assert store.datasets() == []
