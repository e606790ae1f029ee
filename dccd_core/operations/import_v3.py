"""Migrate a dccd v3 data directory into the lake.

dccd 3.x wrote ``{root}/{exchange}/{data_type}/{PAIR}[/{span}]/{period}.parquet`` with
a ``TS`` (ns) column, ``tid`` for trade ids, ``orderbook`` for books (price levels
with ``is_snapshot``, no level index) and ``BASE-QUOTE[_MARKET]`` pair folders. This
module maps each of those onto the v4 contracts and merges them through the store,
so importing twice, or importing over data already collected, converges to one
deduplicated lake.

Mapping decisions (each one a place where v3 carried less information than v4):

* ``_PERP`` pairs become perpetuals: USDT/USDC-quoted ones linear
  (``BTC/USDT:USDT``), anything else inverse (``BTC/USD:BTC``), which is how the
  seven v3 exchanges list them. ``_QUARTER``/``_NEXT_QUARTER`` folders are dated
  futures dccd v4 does not model; they are skipped and reported.
* v3 trades without a ``tid`` get the v4 deterministic id from
  (ts, price, amount, side, rank within equal ts); a missing side becomes "unknown"
  is not allowed by the v4 contract, so such rows are skipped and counted.
* v3 books keep only snapshot rows; ``level`` is the rank by price within
  (ts, side): bids high to low, asks low to high.
* ``funding`` and ``open_interest`` have no v4 data type yet: skipped, reported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from dccd_core.domain import (
    ConfigError,
    CorruptFile,
    DatasetKey,
    DataType,
    Span,
    Symbol,
)
from dccd_core.storage import Store
from dccd_core.storage.frames import polars_schema

__all__ = ["ImportReport", "import_v3", "trade_ids_from_content"]

logger = logging.getLogger(__name__)

_V3_TYPES = {"ohlc": DataType.OHLC, "trades": DataType.TRADES, "orderbook": DataType.BOOK}
_LINEAR_QUOTES = {"USDT", "USDC", "BUSD", "FDUSD"}


@dataclass
class ImportReport:
    """What an import did: per-dataset row counts and what it skipped, and why."""

    datasets: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_new: int = 0
    files: int = 0
    skipped: list[str] = field(default_factory=list)


def _symbol_from_v3(pair: str) -> Symbol | None:
    slug, _, market = pair.partition("_")
    base, sep, quote = slug.partition("-")
    if not sep:
        return None
    market = market.lower()
    if market in ("", "spot"):
        return Symbol.parse(f"{base}/{quote}")
    if market == "perp":
        settle = quote if quote.upper() in _LINEAR_QUOTES else base
        return Symbol.parse(f"{base}/{quote}:{settle}")
    return None


def trade_ids_from_content(df: pl.DataFrame) -> pl.Series:
    """Deterministic trade ids for exchanges (or v3 files) without one.

    The rank within equal ts keeps two identical trades in the same nanosecond
    distinct, and makes the id stable across re-imports of the same rows.
    """
    ranked = df.with_columns(
        pl.int_range(pl.len()).over("ts", order_by=["price", "amount", "side"]).alias("_rank")
    )
    return ranked.select(
        pl.format(
            "{}:{}:{}:{}:{}",
            pl.col("ts"),
            pl.col("price"),
            pl.col("amount"),
            pl.col("side"),
            pl.col("_rank"),
        ).alias("trade_id")
    ).to_series()


def _convert(df: pl.DataFrame, data_type: DataType) -> tuple[pl.DataFrame, int]:
    """A v3 frame to the v4 schema; returns (rows, rows skipped)."""
    if "TS" not in df.columns:
        raise ConfigError("not a dccd v3 file: it has no TS column")
    df = df.rename({"TS": "ts"})
    skipped = 0
    if data_type is DataType.OHLC:
        if "quoteVolume" in df.columns and "quote_volume" not in df.columns:
            df = df.rename({"quoteVolume": "quote_volume"})
        for name in ("quote_volume", "trades"):
            if name not in df.columns:
                df = df.with_columns(pl.lit(None).alias(name))
    elif data_type is DataType.TRADES:
        before = df.height
        df = df.filter(pl.col("side").is_in(["buy", "sell"]))
        skipped = before - df.height
        if "tid" not in df.columns:
            df = df.with_columns(pl.lit(None, pl.Utf8).alias("tid"))
        missing = df.filter(pl.col("tid").is_null())
        if missing.height:
            df = pl.concat(
                [
                    df.filter(pl.col("tid").is_not_null()),
                    missing.with_columns(trade_ids_from_content(missing).alias("tid")),
                ]
            )
        df = df.rename({"tid": "trade_id"})
    else:
        if "is_snapshot" in df.columns:
            before = df.height
            df = df.filter(pl.col("is_snapshot").fill_null(True))
            skipped = before - df.height
        df = df.with_columns(
            pl.when(pl.col("side") == "bid")
            .then(-pl.col("price"))
            .otherwise(pl.col("price"))
            .rank("ordinal")
            .over(["ts", "side"])
            .sub(1)
            .cast(pl.Int32)
            .alias("level")
        )
    target = polars_schema(data_type)
    return df.select(list(target)).cast(target), skipped


def import_v3(
    path: str | os.PathLike[str],
    *,
    store: Store | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImportReport:
    """Merge every dataset of a dccd v3 data directory into ``store``.

    Idempotent: the store's merge-writes deduplicate on the natural key, so a
    second import (or one over data collected since) changes nothing.
    """
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory: pass the dccd v3 data path")
    store = store or Store()
    report = ImportReport()
    for exchange_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for type_dir in sorted(p for p in exchange_dir.iterdir() if p.is_dir()):
            data_type = _V3_TYPES.get(type_dir.name)
            if data_type is None:
                report.skipped.append(f"{type_dir}: v4 has no {type_dir.name!r} data type")
                continue
            for pair_dir in sorted(p for p in type_dir.iterdir() if p.is_dir()):
                symbol = _symbol_from_v3(pair_dir.name)
                if symbol is None:
                    report.skipped.append(f"{pair_dir}: market not modelled in v4")
                    continue
                folders = (
                    [(d, Span.parse(d.name)) for d in sorted(pair_dir.iterdir()) if d.is_dir()]
                    if data_type is DataType.OHLC
                    else [(pair_dir, None)]
                )
                for folder, span in folders:
                    key = DatasetKey(exchange_dir.name, symbol, data_type, span)
                    _import_dataset(folder, key, store, report, progress)
    return report


def _import_dataset(
    folder: Path,
    key: DatasetKey,
    store: Store,
    report: ImportReport,
    progress: Callable[[str], None] | None,
) -> None:
    provenance = {"source": key.exchange, "transport": "import-v3", "imported_from": str(folder)}
    with store.writer(key, provenance=provenance) as writer:
        for file in sorted(folder.glob("*.parquet")):
            try:
                raw = pl.read_parquet(file)
            except Exception as exc:  # polars raises several types for a bad file
                raise CorruptFile(
                    f"cannot read dccd v3 file {file}: {exc}; move it aside and re-run import-v3"
                ) from exc
            rows, skipped = _convert(raw, key.data_type)
            if skipped:
                report.skipped.append(f"{file}: {skipped} rows without a usable side/snapshot")
            writer.add(rows)
            report.rows_read += rows.height
            report.files += 1
            report.datasets[str(key)] = report.datasets.get(str(key), 0) + rows.height
            if progress:
                progress(f"{key}: {file.name} ({rows.height} rows)")
    report.rows_new += writer.result.new_rows
    logger.info("imported %s from %s", key, folder)
