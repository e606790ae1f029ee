"""Bybit's daily trade files on public.bybit.com (derivatives only).

Layout, as listed at https://public.bybit.com/trading/ (a file listing; the format is
not documented, so everything below is read from the files)::

    /trading/BTCUSDT/BTCUSDT2024-01-15.csv.gz     linear (USDT) perpetual
    /trading/BTCUSD/BTCUSD2024-01-15.csv.gz       inverse perpetual

one gzip-compressed CSV per UTC day, no checksum published, a header row::

    timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional
    1705276800.1234,BTCUSDT,Buy,0.003,42805.1,ZeroPlusTick,5e2c4f0a-...-9d1b,12841530000,0.003,128.4153

``timestamp`` is seconds with a decimal fraction (parsed exactly as text, never as a
float); ``side`` is the taker's; ``size`` is the base amount on linear contracts and USD
contracts on inverse ones (then ``amount = size / price``, as the REST parser does).
``trdMatchID`` is taken as the REST ``execId`` (both are the match's UUID; Bybit does not
document that they are the same id). The order of a file's rows is undocumented (files
have been seen newest first): each file is decompressed to disk and read backward when
its top is newer than its bottom, so batches come oldest first either way.

Spot files exist too (``/spot/BTCUSDT/BTCUSDT_2024-01-15.csv.gz``: ``id,timestamp,price,
volume,side`` with ms times) but their ``id`` counts the file's rows, not the REST
``execId``: archive and REST rows of one day would be stored twice, so spot is not
declared (``CAPABILITY.archives``).
"""

from __future__ import annotations

import polars as pl

from dccd_core.domain import ArchiveGranularity, DatasetKey, DataType

from .. import columns
from ..archives.base import ArchiveFile, ArchiveUnavailable
from ..archives.calendar import Period, period_date
from ..archives.checks import map_sides
from ..archives.decode import CsvLayout
from ..archives.http_reader import FileState, HttpArchiveReader
from .capability import CAPABILITY
from .symbols import is_inverse, native_symbol

__all__ = ["ARCHIVE_URL", "BybitArchives"]

ARCHIVE_URL = "https://public.bybit.com"

_LAYOUT = CsvLayout(
    names=(),
    dtypes={"size": pl.Float64, "price": pl.Float64},
    required=("timestamp", "side", "size", "price", "trdMatchID"),
    by_header=True,
)
_SIDES = {"Buy": "buy", "Sell": "sell"}
_SECONDS = r"^(\d+)(?:\.(\d{1,9}))?$"


class BybitArchives(HttpArchiveReader):
    """public.bybit.com daily trade files of linear and inverse perpetuals."""

    capability = CAPABILITY
    order_may_be_reversed = True

    def file_for(self, key: DatasetKey, period: Period) -> ArchiveFile:
        native = native_symbol(key.symbol)
        name = f"{native}{period_date(period)}.csv.gz"
        return ArchiveFile(
            name=name,
            path=f"/trading/{native}/{name}",
            checksum_path=None,
            start_ts=period.start_ts,
            end_ts=period.end_ts,
            granularity=ArchiveGranularity.DAILY,
        )

    def layout(self, key: DatasetKey) -> CsvLayout:
        return _LAYOUT

    def to_rows(
        self, key: DatasetKey, file: ArchiveFile, frame: pl.DataFrame, state: FileState
    ) -> pl.DataFrame:
        sides = map_sides(frame.get_column("side"), _SIDES, file)
        parts = frame.get_column("timestamp").str.extract_groups(_SECONDS)
        whole, fraction = parts.struct.field("1"), parts.struct.field("2")
        if whole.null_count():
            bad = frame.get_column("timestamp").filter(whole.is_null())
            raise ArchiveUnavailable(file.name, f"unreadable timestamp {bad.first()!r}")
        ts = whole.cast(pl.Int64) * 1_000_000_000 + fraction.fill_null("").str.pad_end(9, "0").cast(
            pl.Int64
        )
        price = frame.get_column("price")
        amount = frame.get_column("size")
        if is_inverse(key.symbol):
            amount = amount / price
        rows = pl.DataFrame(
            [
                ts.alias("ts"),
                frame.get_column("trdMatchID").alias("trade_id"),
                price,
                amount.alias("amount"),
                sides.alias("side"),
            ]
        )
        return columns.to_schema(
            DataType.TRADES, {c: rows.get_column(c) for c in rows.columns}
        ).sort("ts", maintain_order=True)
