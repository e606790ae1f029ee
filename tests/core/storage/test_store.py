"""Store: merge-writes, reads, schema checks, provenance, corrupt files, lake readers."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dccd_core.domain import (
    ConfigError,
    CorruptFile,
    DatasetKey,
    SchemaMismatch,
)
from dccd_core.storage import Store, WriteResult
from dccd_core.storage.layout import dataset_dir, period_path

from .helpers import BOOK, OHLC_1H, OHLC_1M, TRADES, book, ns, ohlc, trades

MIN = 60_000_000_000
HOUR = 60 * MIN


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_root_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DCCD_DATA_PATH", str(tmp_path / "lake"))
    assert Store().root == tmp_path / "lake"
    monkeypatch.delenv("DCCD_DATA_PATH")
    monkeypatch.chdir(tmp_path)
    assert Store().root == tmp_path / "data"
    assert not (tmp_path / "data").exists()  # constructing touches nothing


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    start = ns("2024-01-31T23:00")
    rows = ohlc(start + np.arange(120) * MIN, 2.0)
    result = store.write(OHLC_1M, rows)
    assert result.rows == 120 and result.new_rows == 120
    assert [p.name for p in result.files] == ["2024-01.parquet", "2024-02.parquet"]
    back = store.read(OHLC_1M)
    assert back.equals(rows)
    assert back.schema == rows.schema
    assert store.read(OHLC_1M, "2024-02-01", "2024-02-01T00:10").height == 10
    assert store.first_ts(OHLC_1M) == start
    assert store.last_ts(OHLC_1M) == start + 119 * MIN


def test_newer_row_wins_and_counts(tmp_path: Path) -> None:
    store = Store(tmp_path)
    base = ns("2024-03-01")
    store.write(OHLC_1M, ohlc(base + np.arange(10) * MIN, 1.0))
    result = store.write(OHLC_1M, ohlc(base + np.arange(5, 15) * MIN, 2.0))
    assert result == WriteResult(10, 5, (period_path(tmp_path, OHLC_1M, "2024-03"),))
    back = store.read(OHLC_1M)
    assert back["close"].to_list() == [1.0] * 5 + [2.0] * 10
    assert back["ts"].is_sorted()


def test_duplicates_within_one_batch_last_wins(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = ns("2024-03-01")
    rows = trades(["b", "a", "b", "c"], [t + 2, t + 1, t + 3, t + 1], [1.0, 1.0, 9.0, 1.0])
    result = store.write(TRADES, rows)
    assert result.rows == 4 and result.new_rows == 3
    back = store.read(TRADES)
    assert back["trade_id"].to_list() == ["a", "c", "b"]  # sorted by ts, then trade_id
    assert back.filter(pl.col("trade_id") == "b")["price"].item() == 9.0


def test_book_key_is_ts_side_level(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = ns("2024-03-01")
    store.write(BOOK, book([t, t + 10], levels=2, price=1.0))
    store.write(BOOK, book([t + 10], levels=3, price=2.0))
    back = store.read(BOOK)
    assert back.height == 4 + 6
    assert back.filter(pl.col("ts") == t + 10)["price"].to_list() == [2.0] * 6
    assert back.schema["level"] == pl.Int32
    assert back.select("ts", "side", "level").rows() == sorted(
        back.select("ts", "side", "level").rows()
    )


def test_files_are_sorted_deduplicated_zstd_with_provenance(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = ns("2024-03-01")
    store.write(
        TRADES,
        trades(["3", "1", "2", "1"], [t + 3, t + 1, t + 2, t + 1]),
        provenance={"source": "binance", "transport": "rest", "run_id": "r1"},
    )
    path = period_path(tmp_path, TRADES, "2024-03-01")
    meta = pq.read_metadata(path)
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
    assert kv["source"] == "binance" and kv["transport"] == "rest" and kv["run_id"] == "r1"
    assert kv["dccd_version"] and kv["written_at"].endswith("Z")
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.row_group(0).column(0).statistics.has_min_max
    table = pq.read_table(path)
    assert table.column("trade_id").to_pylist() == ["1", "2", "3"]
    assert not table.schema.field("ts").nullable  # the domain's nullability is kept


def test_empty_reads_have_the_exact_schema(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for key, rows in ((OHLC_1M, ohlc([ns("2024-01-01")])), (TRADES, trades(["1"], [1]))):
        assert store.read(key).height == 0
        assert store.read(key).schema == rows.schema
        assert store.scan(key).collect().schema == rows.schema
        store.write(key, rows)
        assert store.read(key, "2030-01-01", "2030-01-02").schema == rows.schema
    assert store.read(BOOK).schema["level"] == pl.Int32
    assert store.first_ts(BOOK) is None and store.last_ts(BOOK) is None


def test_read_range_is_half_open_and_accepts_time_forms(tmp_path: Path) -> None:
    from datetime import UTC, date, datetime

    store = Store(tmp_path)
    base = ns("2024-02-28T23:58")
    store.write(OHLC_1M, ohlc(base + np.arange(6) * MIN))
    got = store.read(OHLC_1M, base + MIN, base + 3 * MIN)["ts"].to_list()
    assert got == [base + MIN, base + 2 * MIN]
    assert store.read(OHLC_1M, date(2024, 2, 29)).height == 4
    assert store.read(OHLC_1M, end=datetime(2024, 2, 29, tzinfo=UTC)).height == 2
    assert store.read(OHLC_1M, "2024-02-29T00:00:00Z", "2024-02-29T00:01").height == 1
    assert store.read(OHLC_1M, base, base).height == 0
    with pytest.raises(ConfigError, match="before start"):
        store.read(OHLC_1M, "2024-03-01", "2024-02-01")
    with pytest.raises(ConfigError, match="invalid time"):
        store.read(OHLC_1M, "yesterday")


def test_scan_is_lazy_and_filtered(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write(OHLC_1H, ohlc(ns("2023-12-31T22:00") + np.arange(5) * HOUR))
    lazy = store.scan(OHLC_1H, "2024-01-01")
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect()["ts"].to_list() == [ns("2024-01-01") + i * HOUR for i in range(3)]


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (ohlc([1]).drop("volume"), "missing columns volume"),
        (ohlc([1]).with_columns(pl.lit(1).alias("vwap")), "unexpected columns vwap"),
        (ohlc([1]).with_columns(pl.col("open").cast(pl.String)), "open is String"),
        (ohlc([1]).with_columns(pl.col("ts").cast(pl.Float64)), "ts is Float64"),
        (ohlc([1]).with_columns(pl.lit(None, pl.Float64).alias("close")), "non-nullable.*close"),
        (ohlc([-5]), "negative ts"),
        ({"ts": [1]}, "polars DataFrame or a pyarrow Table"),
    ],
)
def test_schema_mismatch_touches_nothing(tmp_path: Path, rows: object, match: str) -> None:
    store = Store(tmp_path)
    with pytest.raises(SchemaMismatch, match=match):
        store.write(OHLC_1M, rows)  # type: ignore[arg-type]
    with pytest.raises(SchemaMismatch, match=match), store.writer(OHLC_1M) as writer:
        writer.add(rows)  # type: ignore[arg-type]
    assert _tree(tmp_path) == []


def test_safe_casts_are_accepted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = ns("2024-01-01")
    rows = ohlc([t, t + MIN]).with_columns(
        pl.col("ts").cast(pl.Int64),
        pl.col("trades").cast(pl.Int32),
        pl.col("volume").cast(pl.Float32),
        pl.lit(None).alias("quote_volume"),  # all-null, Null dtype
        pl.Series("open", [1, 2], dtype=pl.Int64),  # ints exactly representable
    )
    store.write(OHLC_1M, rows.to_arrow())  # a pyarrow Table is accepted too
    back = store.read(OHLC_1M)
    assert back.schema == ohlc([1]).schema
    assert back["open"].to_list() == [1.0, 2.0]
    bookrows = book([t]).with_columns(pl.col("level").cast(pl.Int64))
    store.write(BOOK, bookrows)
    with pytest.raises(SchemaMismatch, match="level is Int64"):
        store.write(BOOK, bookrows.with_columns(pl.lit(2**40).alias("level")))


def test_provenance_must_be_strings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="provenance"):
        Store(tmp_path).write(TRADES, trades(["1"], [1]), provenance={"n": 1})  # type: ignore[dict-item]


def test_write_of_nothing(tmp_path: Path) -> None:
    assert Store(tmp_path).write(TRADES, trades([], [])) == WriteResult()
    assert _tree(tmp_path) == []


def _corrupt(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_corrupt_file_is_named_on_read_write_inventory(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = ns("2024-03-01")
    store.write(TRADES, trades(["1", "2"], [t, t + 86_400 * 10**9]))
    bad = period_path(tmp_path, TRADES, "2024-03-01")
    _corrupt(bad)
    good_bytes = period_path(tmp_path, TRADES, "2024-03-02").read_bytes()
    for call in (
        lambda: store.read(TRADES),
        lambda: store.read(TRADES, "2024-03-01", "2024-03-02"),
        lambda: store.scan(TRADES),
        lambda: store.inventory(),
        lambda: store.first_ts(TRADES),
        lambda: store.write(TRADES, trades(["3", "4"], [t + 5, t + 86_400 * 10**9 + 5])),
    ):
        with pytest.raises(CorruptFile, match="delete or move it") as info:
            call()
        assert str(bad) in str(info.value)
    # nothing was overwritten: neither the corrupt file nor its neighbour
    assert len(bad.read_bytes()) > 0
    assert period_path(tmp_path, TRADES, "2024-03-02").read_bytes() == good_bytes
    # reading around it still works
    assert store.read(TRADES, "2024-03-02")["trade_id"].to_list() == ["2"]
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(CorruptFile):
        store.read(TRADES)


def test_stale_temp_files_are_invisible_and_cleaned(tmp_path: Path) -> None:
    store = Store(tmp_path)
    t = ns("2024-03-01")
    store.write(TRADES, trades(["1"], [t]))
    folder = dataset_dir(tmp_path, TRADES)
    stale = folder / ".2024-03-01.parquet.tmp-99999-deadbeef"
    stale.write_bytes(b"half a file")
    assert store.read(TRADES).height == 1
    assert [i.files for i in store.inventory()] == [1]
    assert len(list(tmp_path.glob("**/*.parquet"))) == 1
    store.write(TRADES, trades(["2"], [t + 1]))
    assert not stale.exists()


def test_inventory_from_footers(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write(OHLC_1H, ohlc(ns("2023-12-31T23:00") + np.arange(3) * HOUR))
    store.write(TRADES, trades(["1", "2"], [ns("2024-01-01"), ns("2024-01-03")]))
    infos = {i.key: i for i in store.inventory()}
    assert set(infos) == {OHLC_1H, TRADES} == set(store.datasets())
    assert infos[OHLC_1H].rows == 3 and infos[OHLC_1H].files == 2
    assert infos[OHLC_1H].first_ts == ns("2023-12-31T23:00")
    assert infos[OHLC_1H].last_ts == ns("2024-01-01T01:00")
    assert infos[TRADES].files == 2 and infos[TRADES].bytes > 0


def test_lake_reads_as_one_table_with_polars_and_duckdb(tmp_path: Path) -> None:
    store = Store(tmp_path)
    other = DatasetKey.of("kraken", "ETH/USD:ETH", "ohlc", "1h")
    store.write(OHLC_1M, ohlc(ns("2024-01-31T23:59") + np.arange(3) * MIN))
    store.write(OHLC_1H, ohlc([ns("2024-01-01")]))
    store.write(other, ohlc([ns("2024-01-01"), ns("2024-01-01T01:00")]))
    store.record_coverage(OHLC_1M, 0, 1)  # coverage and lock files must not disturb globs
    lake = (
        pl.scan_parquet(f"{tmp_path}/ohlc/**/*.parquet", hive_partitioning=True)
        .collect()
        .sort("exchange", "span", "ts")
    )
    assert lake.height == 6
    assert {"exchange", "symbol", "span"} <= set(lake.columns)
    assert lake.group_by("exchange", "symbol", "span").len().sort("exchange", "span").rows() == [
        ("binance", "BTC-USDT", "1h", 1),
        ("binance", "BTC-USDT", "1m", 3),
        ("kraken", "ETH-USD-ETH", "1h", 2),
    ]
    con = duckdb.connect()
    got = con.execute(
        "select exchange, symbol, span, count(*) from read_parquet(?, hive_partitioning=true) "
        "group by all order by all",
        [f"{tmp_path}/ohlc/**/*.parquet"],
    ).fetchall()
    assert got == [
        ("binance", "BTC-USDT", "1h", 1),
        ("binance", "BTC-USDT", "1m", 3),
        ("kraken", "ETH-USD-ETH", "1h", 2),
    ]
    # trades: no span level, delta-encoded trade ids
    store.write(TRADES, trades(["100", "101", "102"], [ns("2024-01-01")] * 3))
    store.write(TRADES, trades(["103"], [ns("2024-01-02")]))
    store.record_coverage(TRADES, ns("2024-01-01"), ns("2024-01-03"))
    rows = con.execute(
        "select symbol, trade_id from read_parquet(?, hive_partitioning=true) order by trade_id",
        [f"{tmp_path}/trades/**/*.parquet"],
    ).fetchall()
    assert rows == [("BTC-USDT", str(i)) for i in range(100, 104)]
    lake_trades = pl.scan_parquet(f"{tmp_path}/trades/**/*.parquet", hive_partitioning=True)
    assert lake_trades.select(pl.len()).collect().item() == 4
    assert pq.read_table(tmp_path / "trades").num_rows == 4  # pyarrow's own dataset reader


def test_threads_writing_one_dataset_lose_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    base = ns("2024-05-31T23:00")
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for batch in range(8):
                ids = [f"{worker}-{batch}-{i}" for i in range(50)]
                ts = base + (np.arange(50) + batch * 50) * MIN * 3
                Store(tmp_path).write(TRADES, trades(ids, ts, float(worker)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    back = store.read(TRADES)
    assert back.height == 4 * 8 * 50 == back["trade_id"].n_unique()


def test_pyarrow_string_columns_are_accepted(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([1, 2], pa.int64()),
            "trade_id": pa.array(["a", "b"], pa.string()),
            "price": [1.0, 2.0],
            "amount": [1.0, 1.0],
            "side": pa.array(["buy", "sell"], pa.string()),
        }
    )
    Store(tmp_path).write(TRADES, table)
    assert Store(tmp_path).read(TRADES)["trade_id"].to_list() == ["a", "b"]
