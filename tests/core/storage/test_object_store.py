"""The lake on S3-compatible object storage, against a real S3 server on loopback
(moto's server mode, ``tests/fakes/s3.py``): backfills land equal to the truth, every
reader (``Store``, the CLI, polars) reads them, segments and compactions work through
the seam, a writer killed with SIGKILL loses no committed row, and writers in
different processes are serialised by the lease object, not a local lock file."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from dccd_cli import cli
from dccd_core.catalog import parse_catalog
from dccd_core.domain import (
    NS_PER_MS,
    CatalogError,
    CorruptFile,
    DatasetKey,
    StoreError,
    to_ns,
)
from dccd_core.operations.ensure import ensure
from dccd_core.storage import SegmentPolicy, Store
from dccd_core.storage.compaction import CRASH_POINTS
from dccd_core.storage.fs import list_entries
from dccd_core.storage.layout import coverage_path, dataset_dir, lock_path
from dccd_core.storage.lease import ObjectLease
from dccd_core.storage.lock import dataset_lock
from dccd_core.storage.objectstore import ObjectPath
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_ws import BinanceStreamFake
from tests.fakes.kit import backfill_on, stream_on
from tests.fakes.s3 import S3Server, running_s3_server
from tests.fakes.server import FaultInjector, serve_in_thread

from .helpers import TRADES, ns, trades
from .test_segments import POLICY as SEGMENT_POLICY
from .test_segments import SimulatedCrash, as_map, crash_at, trade_rows

ROOT = Path(__file__).resolve().parents[3]
LISTING_MS = to_ns("2024-01-01") // NS_PER_MS
START, END = to_ns("2024-02-01"), to_ns("2024-02-01T06:00:00Z")
CANDLES = DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@pytest.fixture
def root(s3: S3Server) -> str:
    """A fresh, empty bucket's lake root."""
    return f"s3://{s3.new_bucket()}/lake"


def _fake() -> FakeBinance:
    return FakeBinance.default(listing_ms=LISTING_MS, weight_limit=10**9)


async def test_backfill_into_a_bucket_equals_the_truth_and_every_reader_reads_it(
    s3: S3Server, root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake()
    store = Store(root, object_store=s3.options(), commit_rows=20_000)
    store.check_writable()
    for key in (TRADES, CANDLES):
        await backfill_on("binance", fake.app(), key, store, start=START, end=END)
    truth = fake.truth_trades(START, END)
    assert_frame_equal(store.read(TRADES), truth)
    assert_frame_equal(store.scan(TRADES, START, END).collect(), truth)
    assert_frame_equal(store.read(CANDLES), fake.truth_candles(START, END))
    assert store.holes(TRADES, START, END) == [] and store.holes(CANDLES, START, END) == []
    assert sorted(map(str, store.datasets())) == sorted(map(str, (TRADES, CANDLES)))

    # coverage lives with the data, in the bucket, beside the period files
    cov = coverage_path(store.root, TRADES)
    assert isinstance(cov, ObjectPath) and cov.url.startswith(root + "/trades/")
    assert json.loads(cov.read_text())["ranges"] == [[START, END]]
    names = {e.name for e in list_entries(dataset_dir(store.root, TRADES))}
    assert names == {"_coverage.json", "2024-02-01.parquet"}
    assert not Path("/" + root.removeprefix("s3://")).exists()  # nothing went to local disk

    # polars alone, with the documented storage options (no dccd involved)
    glob = f"{root}/trades/exchange=binance/symbol=BTC-USDT/*.parquet"
    direct = pl.scan_parquet(glob, storage_options=s3.storage_options()).collect()
    assert_frame_equal(direct.select(truth.columns).sort("ts", "trade_id"), truth)

    # the CLI, configured by the standard AWS variables and DCCD_DATA_PATH only
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DCCD_DATA_PATH", root)
    runner = CliRunner()
    result = runner.invoke(cli, ["inventory"])
    assert result.exit_code == 0, result.output
    assert "binance" in result.stdout and str(truth.height) in result.stdout.replace(",", "")
    out = tmp_path / "trades.parquet"
    result = runner.invoke(
        cli, ["read", "binance", "BTC/USDT", "trades", "--format", "parquet", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert_frame_equal(pl.read_parquet(out), truth)
    result = runner.invoke(
        cli,
        [
            "gaps",
            "binance",
            "BTC/USDT",
            "trades",
            "--root",
            root,
            "--start",
            "2024-02-01",
            "--end",
            "2024-02-01T06:00",
        ],
    )
    assert result.exit_code == 0, result.output


def test_segments_and_compaction_work_in_a_bucket(s3: S3Server, root: str) -> None:
    """The stream flush path: small commits into a large period become segments
    (conditional renames = COPY + DELETE), then one compaction merges them."""
    policy = SegmentPolicy(min_base_rows=100, open_segment_rows=0, close_after_s=10**9)
    store = Store(root, object_store=s3.options(), segments=policy)
    day = ns("2024-03-01")
    base = trades([str(i) for i in range(1_000)], [day + i * 10**9 for i in range(1_000)])
    store.write(TRADES, base)
    written = [base]
    for n in range(3):
        batch = trades(
            [f"s{n}-{i}" for i in range(5)], [day + 2_000 * 10**9 + n * 10 + i for i in range(5)]
        )
        result = store.write(TRADES, batch)
        assert result.new_rows == 5 and ".seg-" in result.files[0].name
        written.append(batch)
    names = {e.name for e in list_entries(dataset_dir(store.root, TRADES))}
    assert sum(".seg-" in n for n in names) == 3
    truth = pl.concat(written).sort("ts", "trade_id")
    assert_frame_equal(store.read(TRADES).sort("ts", "trade_id"), truth)
    assert store.compact(TRADES) == 1
    names = {e.name for e in list_entries(dataset_dir(store.root, TRADES))}
    # one visible file; no journal (absorbed copies go in the background)
    assert {n for n in names if not n.startswith(".")} == {"2024-03-01.parquet"}
    assert not [n for n in names if ".compact-" in n or ".new-" in n]
    assert_frame_equal(store.read(TRADES).sort("ts", "trade_id"), truth)


def test_a_backfill_filling_a_closed_day_in_a_bucket_appends_then_compacts_once(
    s3: S3Server, root: str
) -> None:
    """Bounded commits into a closed day (issue 12): segments while filling, readable
    and deduplicated between commits, one streamed compaction at the end."""
    policy = SegmentPolicy(min_base_rows=10, open_segment_rows=0)
    store = Store(root, object_store=s3.options(), segments=policy)
    day = ns("2024-03-01")
    pages = [
        trades([str(i) for i in range(lo, lo + 50)], [day + i * 10**9 for i in range(lo, lo + 50)])
        for lo in range(0, 200, 50)
    ]
    with store.writer(TRADES, commit_rows=2**62, commit_seconds=float("inf")) as writer:
        for page in pages:
            writer.add(page)
            writer.cover(day, int(page["ts"].max()) + 1)
            writer.flush()
        names = {e.name for e in list_entries(dataset_dir(store.root, TRADES))}
        assert sum(".seg-" in n for n in names) >= 2
        assert_frame_equal(store.read(TRADES), pl.concat(pages))
    names = {e.name for e in list_entries(dataset_dir(store.root, TRADES))}
    assert {n for n in names if n.endswith(".parquet")} == {"2024-03-01.parquet"}
    assert_frame_equal(store.read(TRADES), pl.concat(pages))
    assert store.holes(TRADES, day, day + 200 * 10**9 - 10**9 + 1) == []


# -- the lease --------------------------------------------------------------------


def test_lease_takes_over_an_expired_holder_and_times_out_on_a_live_one(
    s3: S3Server, root: str
) -> None:
    store = Store(root, object_store=s3.options(lease_ttl_s=0.6))
    path = lock_path(store.root, TRADES)
    assert isinstance(path, ObjectPath)
    holder = ObjectLease(path)
    holder.acquire(timeout=1)
    rival = ObjectLease(path)
    t0 = time.monotonic()
    with (
        pytest.raises(StoreError, match="another process is writing"),
        dataset_lock(path, timeout_s=0.8),  # same process, its own lease object
    ):
        pass  # pragma: no cover
    # the heartbeat kept the holder's lease alive past its TTL
    assert time.monotonic() - t0 >= 0.7 and not holder.lost
    holder._stop.set()  # the holder "dies": no more heartbeats, no release
    time.sleep(0.7)
    rival.acquire(timeout=2)  # takes over the expired lease
    assert json.loads(path.read_text())["owner"] == rival.owner
    rival.release()
    holder.acquire(timeout=0.5)  # released: taken at once
    holder.release()


_CONTENDER = textwrap.dedent(
    """
    import json, sys, time
    from dccd_core.domain import DatasetKey
    from dccd_core.storage import Store
    from dccd_core.storage.layout import lock_path
    from dccd_core.storage.lock import dataset_lock

    store = Store(sys.argv[1])  # endpoint and credentials from the AWS variables
    path = lock_path(store.root, DatasetKey.of("binance", "BTC/USDT", "trades"))
    spans = []
    for _ in range(4):
        with dataset_lock(path, timeout_s=30):
            t0 = time.time_ns(); time.sleep(0.15); spans.append((t0, time.time_ns()))
    print(json.dumps(spans))
    """
)


def test_writers_in_two_processes_are_serialised_by_the_lease(s3: S3Server, root: str) -> None:
    env = {**os.environ, **s3.env(), "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, root],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    spans = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
        spans += json.loads(out)
    spans.sort()
    assert len(spans) == 8
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "two processes held the dataset lock at once"


_BACKFILL = textwrap.dedent(
    """
    import asyncio, sys
    from dccd_core.domain import DatasetKey
    from dccd_core.operations.backfill import backfill
    from dccd_core.sources.registry import build_source
    from dccd_core.storage import Store
    from dccd_core.storage.objectstore import ObjectStoreOptions

    async def main():
        source = build_source("binance")  # origin from DCCD_BINANCE_REST_URL
        store = Store(sys.argv[1], commit_rows=5_000,
                      object_store=ObjectStoreOptions(lease_ttl_s=float(sys.argv[4])))
        await backfill(DatasetKey.of("binance", "BTC/USDT", "trades"),
                       start=int(sys.argv[2]), end=int(sys.argv[3]), store=store, source=source)

    asyncio.run(main())
    """
)


def _backfill_child(origin: str, root: str, s3: S3Server, ttl_s: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, **s3.env(), "DCCD_BINANCE_REST_URL": origin, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _BACKFILL, root, str(START), str(END), str(ttl_s)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_two_processes_backfilling_one_dataset_into_a_bucket_lose_nothing(
    s3: S3Server, root: str
) -> None:
    fake = _fake()
    with serve_in_thread(fake.app) as origin:
        children = [_backfill_child(origin, root, s3, 30.0) for _ in range(2)]
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err.decode()
    store = Store(root, object_store=s3.options())
    assert_frame_equal(store.read(TRADES), fake.truth_trades(START, END))


@pytest.mark.slow
def test_backfill_killed_with_sigkill_loses_no_committed_row_and_rerun_converges(
    s3: S3Server, root: str
) -> None:
    fake = FakeBinance.default(
        listing_ms=LISTING_MS, weight_limit=10**9, faults=FaultInjector(latency_s=0.01)
    )
    store = Store(root, object_store=s3.options(lease_ttl_s=2.0), commit_rows=5_000)
    folder = dataset_dir(store.root, TRADES)
    with serve_in_thread(fake.app) as origin:
        child = _backfill_child(origin, root, s3, 2.0)
        deadline = time.monotonic() + 60
        while not any(e.name.endswith(".parquet") for e in list_entries(folder)):
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child committed nothing in 60 s"
            time.sleep(0.05)
        time.sleep(0.3)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.returncode == -signal.SIGKILL, "the child finished before the kill"

        partial = store.read(TRADES)
        truth = fake.truth_trades(START, END)
        assert 0 < partial.height < truth.height and partial["trade_id"].is_unique().all()
        # what was committed is exactly the truth's rows (no half file, nothing wrong)
        assert_frame_equal(partial, truth.join(partial.select("trade_id"), on="trade_id"))

        async def rerun() -> None:
            await backfill_on("binance", fake.app(), TRADES, store, start=START, end=END)

        t0 = time.monotonic()
        asyncio.run(rerun())  # waits out the dead writer's lease (2 s), then converges
    assert time.monotonic() - t0 < 30
    assert_frame_equal(store.read(TRADES), truth)
    assert store.holes(TRADES, START, END) == []


async def test_a_stream_flushes_segments_into_a_bucket(s3: S3Server, root: str) -> None:
    """Streams keep working with the lake on S3: small flushes become segments (the
    same commit path), every trade once, equal to what the exchange sent."""
    fake = BinanceStreamFake(per_ms=1)
    policy = SegmentPolicy(min_base_rows=100, fanout=3, max_segments=6)
    store = Store(root, object_store=s3.options(), segments=policy)
    final = await stream_on(
        fake, "binance", ["BTC/USDT"], "trades", store=store, flush_interval_s=0.2,
        max_runtime_s=2.0,
    )  # fmt: skip
    stored = store.read(TRADES)
    ids = stored.get_column("trade_id").cast(pl.Int64)
    assert final.final and final.total_rows >= stored.height > 300
    assert ids.is_unique().all() and ids.max() - ids.min() + 1 == stored.height  # type: ignore[operator]
    first_ms, last_ms = stored["ts"][0] // 1_000_000, stored["ts"][-1] // 1_000_000
    truth = [int(r["a"]) for r in fake.truth(first_ms, last_ms)]
    assert ids.to_list() == [a for a in truth if ids.min() <= a <= ids.max()]  # type: ignore[operator]
    names = {e.name for e in list_entries(dataset_dir(store.root, TRADES))}
    assert any(".seg-" in n for n in names) and "_coverage.json" in names


def test_the_catalog_names_the_endpoint_and_the_root_keeps_it_as_a_url(s3: S3Server) -> None:
    """``store: {root: s3://..., endpoint_url: ...}`` with credentials in the AWS
    variables; the Dagster side gets the root back as a string and reaches the same
    bucket. A bucket that cannot be reached is a catalog problem, said at load."""
    bucket = s3.new_bucket()
    env = {k: v for k, v in s3.env().items() if k != "AWS_ENDPOINT_URL"}
    raw = {
        "store": {"root": f"s3://{bucket}/lake", "endpoint_url": s3.endpoint},
        "datasets": [{"exchange": "binance", "symbols": ["BTC/USDT"], "data_types": ["trades"],
                      "start": "2024-01-01"}],
    }  # fmt: skip
    catalog = parse_catalog(raw, env=env)
    assert isinstance(catalog.store_root, ObjectPath)
    assert str(catalog.store_root) == f"s3://{bucket}/lake"
    Store(str(catalog.store_root)).write(TRADES, trades(["1"], [ns("2024-03-01")]))
    assert Store(catalog.store_root).read(TRADES).height == 1

    missing = {**raw, "store": {**raw["store"], "root": "s3://no-such-bucket-dccd/lake"}}
    with pytest.raises(CatalogError, match=r"store\.root: .*no-such-bucket-dccd"):
        parse_catalog(missing, env=env)


def test_ensure_fetches_the_holes_into_a_bucket_once(
    s3: S3Server, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ensure`` holds its own per-dataset lock (the lease, taken from a worker thread)
    and reads coverage from the bucket: a second call sends no request."""
    fake = _fake()
    store = Store(root, object_store=s3.options())
    with serve_in_thread(fake.app) as origin:
        monkeypatch.setenv("DCCD_BINANCE_REST_URL", origin)
        args = ("binance", "BTC/USDT", "ohlc", "1m")
        frame = ensure(*args, start="2024-02-01", end="2024-02-02", store=store)
        seen = sum(fake.requests.values())
        again = ensure(*args, start="2024-02-01", end="2024-02-02", store=store)
    truth = fake.truth_candles(to_ns("2024-02-01"), to_ns("2024-02-02"))
    assert frame.equals(truth.select(frame.columns)) and again.equals(frame)
    assert sum(fake.requests.values()) == seen


def test_duckdb_reads_the_bucket_when_its_httpfs_extension_is_installed(
    s3: S3Server, root: str
) -> None:
    """The documented DuckDB query (docs/object-store.md). Tests never download: the
    extension must already be installed (``INSTALL httpfs`` once, online)."""
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed")
    con = duckdb.connect(config={"autoinstall_known_extensions": False})  # never download
    try:
        con.sql("LOAD httpfs")
    except duckdb.Error as exc:
        pytest.skip(
            f"DuckDB's httpfs extension is not installed here ({exc}); run "
            "`INSTALL httpfs` once on a machine with internet to exercise this"
        )
    store = Store(root, object_store=s3.options())
    rows = trades(["1", "2", "3"], [ns("2024-03-01") + i for i in range(3)])
    store.write(TRADES, rows)
    host = s3.endpoint.removeprefix("http://")
    opts = s3.options().with_env()
    con.sql(
        f"CREATE SECRET lake (TYPE s3, KEY_ID '{opts.access_key_id}', "
        f"SECRET '{opts.secret_access_key}', REGION '{opts.region}', ENDPOINT '{host}', "
        "URL_STYLE 'path', USE_SSL false)"
    )
    got = con.sql(
        f"SELECT * FROM read_parquet('{root}/trades/**/*.parquet', hive_partitioning = true)"
    ).pl()
    assert_frame_equal(got.select(rows.columns).sort("ts"), rows)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_compaction_step_in_a_bucket_loses_and_duplicates_nothing(
    s3: S3Server, root: str, point: str
) -> None:
    """The compaction journal on a bucket, where each rename is a COPY then a DELETE:
    killed at any step, the next process finishes it; no row lost or seen twice."""
    store = Store(root, object_store=s3.options(), segments=SEGMENT_POLICY)
    for ids in (list(range(20)), [20], [21, 22]):
        store.write(TRADES, trade_rows(ids))
    expected = as_map(store.read(TRADES))
    with crash_at(point), pytest.raises(SimulatedCrash):
        store.compact(TRADES)
    reopened = Store(root, object_store=s3.options(), segments=SEGMENT_POLICY)
    assert as_map(reopened.read(TRADES)) == expected  # recovery runs first
    reopened.compact(TRADES)
    assert as_map(reopened.read(TRADES)) == expected
    folder = dataset_dir(reopened.root, TRADES)
    names = [e.name for e in list_entries(folder)]
    assert [n for n in names if not n.startswith(".")] == ["2024-02-29.parquet"]
    assert not [n for n in names if ".compact-" in n or ".new-" in n]  # journal finished


def test_a_damaged_object_is_corrupt_and_an_unreachable_bucket_is_said_as_such(
    s3: S3Server, root: str
) -> None:
    store = Store(root, object_store=s3.options())
    store.write(TRADES, trades(["1"], [ns("2024-03-01")]))
    period = dataset_dir(store.root, TRADES) / "2024-03-01.parquet"
    period.write_bytes(b"PAR1 not a parquet file")
    with pytest.raises(CorruptFile, match=f"corrupt period file {period.url}.*re-run"):
        store.read(TRADES)

    closed = S3Server(f"http://127.0.0.1:{_closed_port()}")
    gone = Store(root, object_store=closed.options())
    with pytest.raises(StoreError, match=r"cannot list s3://.*AWS_ENDPOINT_URL") as info:
        gone.read(TRADES)
    assert not isinstance(info.value, CorruptFile)
    with pytest.raises(StoreError, match="not writable"):
        gone.check_writable()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed when the block ends: nobody listens
