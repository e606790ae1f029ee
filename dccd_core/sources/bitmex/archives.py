"""BitMEX's daily trade dumps on public.bitmex.com.

Layout (listed at https://public.bitmex.com/?prefix=data/trade/, not documented beyond
the listing): one gzip-compressed CSV per UTC day holding every instrument's trades,
``/data/trade/YYYYMMDD.csv.gz``; no checksum is published. The columns are the REST
``/api/v1/trade`` object's fields, with a header row (undocumented; read from the
files, so columns are taken by header name: ``trdType`` was added later)::

    timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional,trdType
    2024-01-01D00:00:07.415000000,XBTUSD,Sell,2300,42290.5,ZeroPlusTick,00000000-006d-1000-0000-0003a1b2c3d4,5438574,0.05438574,2300,Regular

``timestamp`` is ``YYYY-MM-DDDhh:mm:ss.fffffffff`` (a ``D`` between date and time,
nanosecond digits). Rows equal the REST parser's (``parse.parse_trades``): ``trade_id``
= ``trdMatchID``, ``side`` the taker's (``Buy``/``Sell`` lower-cased), ``amount`` =
``homeNotional`` (base currency). A file without ``homeNotional`` (the oldest dumps)
is refused, so REST (which converts ``size`` with the contract spec) serves that day.
One file holds all symbols: each dataset reads it and keeps its own symbol's rows.

The datasets of one process share each day's download (``shares_files``: the
bounded per-process cache ``archives.shared_files``), so N BitMEX trade datasets
backfilled side by side fetch each day once; each still decompresses it for its own
symbol. Across processes (Dagster runs each asset in its own) every process downloads
the day itself: a lake-side cache would need locking and clean-up across processes.
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
from .symbols import to_native

__all__ = ["ARCHIVE_URL", "BitmexArchives"]

ARCHIVE_URL = "https://public.bitmex.com"

_LAYOUT = CsvLayout(
    names=(),
    dtypes={"price": pl.Float64, "homeNotional": pl.Float64},
    required=("timestamp", "symbol", "side", "price", "trdMatchID", "homeNotional"),
    by_header=True,
)
_SIDES = {"Buy": "buy", "Sell": "sell"}


class BitmexArchives(HttpArchiveReader):
    """public.bitmex.com daily trade dumps (no published checksum)."""

    capability = CAPABILITY
    shares_files = True  # one dump per day holds every symbol

    def file_for(self, key: DatasetKey, period: Period) -> ArchiveFile:
        name = f"{period_date(period).replace('-', '')}.csv.gz"
        return ArchiveFile(
            name=name,
            path=f"/data/trade/{name}",
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
        mine = frame.filter(pl.col("symbol") == to_native(key.symbol))
        if mine.height == 0:
            return columns.empty_frame(DataType.TRADES)
        if mine.get_column("homeNotional").null_count():
            raise ArchiveUnavailable(file.name, "rows without homeNotional (an older dump)")
        sides = map_sides(mine.get_column("side"), _SIDES, file)
        try:
            ts = (
                mine.get_column("timestamp")
                .str.replace("D", "T", literal=True)
                .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ns", time_zone="UTC")
                .dt.epoch("ns")
            )
        except pl.exceptions.PolarsError as exc:
            raise ArchiveUnavailable(file.name, f"unreadable timestamp ({exc})") from exc
        rows = pl.DataFrame(
            [
                ts.alias("ts"),
                mine.get_column("trdMatchID").alias("trade_id"),
                mine.get_column("price"),
                mine.get_column("homeNotional").alias("amount"),
                sides.alias("side"),
            ]
        )
        return rows.sort("ts", maintain_order=True)
