"""`import-v3`: a dccd 3.x data directory merges into the lake with the same rows.

The v3 files are written here with dccd 3.8.1's documented layout and schema
(``{exchange}/{data_type}/{PAIR}[/{span}]/{period}.parquet``, ``TS`` in ns, ``tid``,
``orderbook`` levels with ``is_snapshot``), exactly as its ``ParquetStore.save`` does.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dccd_core.domain import ConfigError, DatasetKey
from dccd_core.operations.import_v3 import import_v3
from dccd_core.storage import Store

MINUTE = 60 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01


def _write_v3(root: Path) -> dict[str, pl.DataFrame]:
    ohlc = pl.DataFrame(
        {
            "TS": [T0 + i * 3600 * 10**9 for i in range(48)],
            "open": [100.0 + i for i in range(48)],
            "high": [101.0 + i for i in range(48)],
            "low": [99.0 + i for i in range(48)],
            "close": [100.5 + i for i in range(48)],
            "volume": [float(i) for i in range(48)],
            "quote_volume": [None] * 48,
            "trades": [i for i in range(48)],
        },
        schema_overrides={"quote_volume": pl.Float64},
    )
    ohlc_dir = root / "binance" / "ohlc" / "BTC-USDT" / "1h"
    ohlc_dir.mkdir(parents=True)
    ohlc.write_parquet(ohlc_dir / "2024.parquet")

    trades = pl.DataFrame(
        {
            "TS": [T0 + i * MINUTE for i in range(10)] + [T0 + 86_400 * 10**9] * 3,
            "price": [50_000.0 + i for i in range(13)],
            "amount": [0.1] * 13,
            "side": ["buy", "sell"] * 6 + ["buy"],
            "tid": [str(i) for i in range(13)],
        }
    )
    trades_dir = root / "binance" / "trades" / "BTC-USDT_PERP"
    trades_dir.mkdir(parents=True)
    day_two = pl.col("TS") >= T0 + 86_400 * 10**9
    trades.filter(~day_two).write_parquet(trades_dir / "2024-01-01.parquet")
    trades.filter(day_two).write_parquet(trades_dir / "2024-01-02.parquet")

    book = pl.DataFrame(
        {
            "TS": [T0] * 4,
            "side": ["bid", "bid", "ask", "ask"],
            "price": [99.0, 100.0, 102.0, 101.0],
            "amount": [1.0, 2.0, 3.0, 4.0],
            "count": [None] * 4,
            "is_snapshot": [True] * 4,
        },
        schema_overrides={"count": pl.Int64},
    )
    book_dir = root / "bitmex" / "orderbook" / "BTC-USD_PERP"
    book_dir.mkdir(parents=True)
    book.write_parquet(book_dir / "2024-01-01.parquet")
    (root / "binance" / "funding" / "BTC-USDT_PERP").mkdir(parents=True)
    return {"ohlc": ohlc, "trades": trades, "book": book}


def test_import_v3_yields_the_same_rows(tmp_path: Path) -> None:
    v3 = _write_v3(tmp_path / "v3")
    store = Store(tmp_path / "lake")

    report = import_v3(tmp_path / "v3", store=store)

    ohlc = store.read(DatasetKey.of("binance", "BTC/USDT", "ohlc", "1h"))
    assert ohlc["ts"].to_list() == v3["ohlc"]["TS"].to_list()
    assert ohlc["close"].to_list() == v3["ohlc"]["close"].to_list()
    assert ohlc["trades"].to_list() == v3["ohlc"]["trades"].to_list()

    trades = store.read(DatasetKey.of("binance", "BTC/USDT:USDT", "trades"))
    assert trades["trade_id"].to_list() == v3["trades"]["tid"].to_list()
    assert trades["price"].to_list() == v3["trades"]["price"].to_list()
    assert trades["side"].to_list() == v3["trades"]["side"].to_list()

    book = store.read(DatasetKey.of("bitmex", "BTC/USD:BTC", "book"))
    levels = {(r["side"], r["level"]): r["price"] for r in book.iter_rows(named=True)}
    assert levels == {("bid", 0): 100.0, ("bid", 1): 99.0, ("ask", 0): 101.0, ("ask", 1): 102.0}

    assert report.rows_read == 48 + 13 + 4
    assert report.rows_new == 48 + 13 + 4
    assert any("funding" in s for s in report.skipped)

    again = import_v3(tmp_path / "v3", store=store)  # idempotent
    assert again.rows_new == 0
    assert store.read(DatasetKey.of("binance", "BTC/USDT", "ohlc", "1h")).height == 48


def test_import_v3_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        import_v3(tmp_path / "nope", store=Store(tmp_path / "lake"))


def test_import_v3_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dccd_cli import cli

    _write_v3(tmp_path / "v3")
    lake = tmp_path / "lake"
    result = CliRunner().invoke(cli, ["import-v3", str(tmp_path / "v3"), "--root", str(lake)])
    assert result.exit_code == 0, result.output
    assert "65 rows read, 65 new rows" in result.output
    assert Store(lake).read(DatasetKey.of("binance", "BTC/USDT", "ohlc", "1h")).height == 48
    missing = CliRunner().invoke(cli, ["import-v3", str(tmp_path / "nope")])
    assert missing.exit_code == 2
