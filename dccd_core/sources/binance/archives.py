"""Binance's bulk files on data.binance.vision: klines and aggTrades, spot and USD-M.

Docs: https://github.com/binance/binance-public-data (README). Layout under the origin::

    /data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip
    /data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-15.zip
    /data/futures/um/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01.zip
    /data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-15.zip

each beside ``<file>.CHECKSUM``: ``<sha256 hex>  <file name>``. A zip holds one CSV.

Columns (by position; files with a header row name them as in brackets):

* klines: open time, open, high, low, close, volume, close time, quote asset volume,
  number of trades, taker buy base volume, taker buy quote volume, ignore
  (``open_time,open,high,low,close,volume,close_time,quote_volume,count,
  taker_buy_volume,taker_buy_quote_volume,ignore``)
* aggTrades: aggregate trade id, price, quantity, first trade id, last trade id,
  timestamp, was the buyer the maker[, was the trade the best price match] (spot has
  the 8th column; ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,
  transact_time,is_buyer_maker``)

Quirks handled per file (``archives.decode``, ``archives.checks``): newer USD-M files
have a header row, spot and older ones do not; spot timestamps are µs from 2025-01-01
(ms before), detected by magnitude. Sample rows::

    1704067200000,42283.58,42298.62,42261.02,42298.61,35.92724,1704067259999,1519032.45,1327,20.0,846000.1,0
    2650118342,42117.53,0.00125,3190552807,3190552808,1704070812345,True,True

Rows equal the REST source's (``parse.py``) for the same span: ``ts`` the bar's open
time / the trade time in ns, ``trade_id`` the aggregate id, ``side`` the taker's side
(``is_buyer_maker`` true -> ``sell``, the same ``taker_side``), replayed aggregates
(a known Binance quirk, see ``parse_trades_page``) dropped the same way, and an
aggregate whose time goes back against its id refused like a REST page
(``check_trade_id_order``).
"""

from __future__ import annotations

import polars as pl

from dccd_core.domain import (
    ArchiveGranularity,
    DatasetKey,
    DataType,
    UnexpectedPayload,
    check_trade_id_order,
)

from .. import columns
from ..archives.base import ArchiveFile, ArchiveUnavailable
from ..archives.calendar import Period, period_date
from ..archives.checks import ns_per_unit
from ..archives.decode import CsvLayout
from ..archives.http_reader import FileState, HttpArchiveReader
from .capability import CAPABILITY
from .parse import log_replays, taker_side
from .symbols import market_of, native_symbol

__all__ = ["ARCHIVE_URL", "BinanceArchives", "archive_path"]

ARCHIVE_URL = "https://data.binance.vision"

_MARKET_DIRS = {"spot": "spot", "usdm": "futures/um"}
_KLINES = CsvLayout(
    names=tuple(
        [
            "open_time",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "close_time",
            "quote_volume",
            "count",
            "taker_buy_volume",
            "taker_buy_quote_volume",
            "ignore",
        ]
    ),
    dtypes={
        "open_time": pl.Int64,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
        "quote_volume": pl.Float64,
        "count": pl.Int64,
    },
    required=("open_time", "open", "high", "low", "close", "volume", "quote_volume", "count"),
)
#: aggTrades columns every file has, by position (USD-M header names)
_AGG_COLUMNS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
)
#: trailing columns only some files have (spot's best-match flag)
_AGG_OPTIONAL = ("is_best_match",)
_AGG_TRADES = CsvLayout(
    names=_AGG_COLUMNS + _AGG_OPTIONAL,
    dtypes={
        "agg_trade_id": pl.Int64,
        "price": pl.Float64,
        "quantity": pl.Float64,
        "first_trade_id": pl.Int64,
        "last_trade_id": pl.Int64,
        "transact_time": pl.Int64,
        "is_buyer_maker": pl.Boolean,
    },
    # derived, not listed again: every column but the optional tail is required
    required=_AGG_COLUMNS,
)


def archive_path(key: DatasetKey, period: Period) -> tuple[str, str]:
    """``(file name, path)`` of ``key``'s file for ``period`` (module docstring)."""
    market = _MARKET_DIRS[market_of(key.symbol)]
    native = native_symbol(key.symbol)
    when = period_date(period)
    if key.data_type is DataType.OHLC:
        assert key.span is not None  # a DatasetKey of ohlc always has one
        name = f"{native}-{key.span.label}-{when}.zip"
        folder = f"klines/{native}/{key.span.label}"
    else:
        name = f"{native}-aggTrades-{when}.zip"
        folder = f"aggTrades/{native}"
    return name, f"/data/{market}/{period.granularity.value}/{folder}/{name}"


class BinanceArchives(HttpArchiveReader):
    """data.binance.vision klines and aggTrades (spot, USD-M), sha256-verified."""

    capability = CAPABILITY

    def file_for(self, key: DatasetKey, period: Period) -> ArchiveFile:
        name, path = archive_path(key, period)
        return ArchiveFile(
            name=name,
            path=path,
            checksum_path=f"{path}.CHECKSUM",
            start_ts=period.start_ts,
            end_ts=period.end_ts,
            granularity=ArchiveGranularity(period.granularity),
        )

    def layout(self, key: DatasetKey) -> CsvLayout:
        return _KLINES if key.data_type is DataType.OHLC else _AGG_TRADES

    def to_rows(
        self, key: DatasetKey, file: ArchiveFile, frame: pl.DataFrame, state: FileState
    ) -> pl.DataFrame:
        time_column = "open_time" if key.data_type is DataType.OHLC else "transact_time"
        stamps = frame.get_column(time_column)
        if stamps.null_count():
            raise ArchiveUnavailable(file.name, f"implausible: empty {time_column} values")
        if state.ns_per_unit is None:
            state.ns_per_unit = ns_per_unit(int(stamps[0]), file.name)
        ts = (stamps * state.ns_per_unit).alias("ts")
        if key.data_type is DataType.OHLC:
            rows = columns.to_schema(
                DataType.OHLC,
                {
                    "ts": ts,
                    **{c: frame.get_column(c) for c in ("open", "high", "low", "close", "volume")},
                    "quote_volume": frame.get_column("quote_volume"),
                    "trades": frame.get_column("count"),
                },
            )
        else:
            rows = self._trades(file, frame, ts, state)
        return rows if rows.get_column("ts").is_sorted() else rows.sort("ts", maintain_order=True)

    @staticmethod
    def _trades(
        file: ArchiveFile, frame: pl.DataFrame, ts: pl.Series, state: FileState
    ) -> pl.DataFrame:
        # ``is_buyer_maker`` is parsed as a boolean by the CSV reader (``True``/``False``
        # in any case; any other word makes the block unreadable): only a blank is left
        maker = frame.get_column("is_buyer_maker")
        if maker.null_count():
            raise ArchiveUnavailable(file.name, "implausible: an empty is_buyer_maker")
        # replayed aggregates (their trades f..l were delivered before): dropped as the
        # REST parser drops them, so both sources store the same trade ids
        last = frame.get_column("last_trade_id")
        before = last.cum_max().shift(1)
        if state.last_trade_id is not None:
            before = before.fill_null(state.last_trade_id).clip(lower_bound=state.last_trade_id)
        replay = (frame.get_column("first_trade_id") <= before).fill_null(False)
        if frame.height:
            high = int(last.max())  # type: ignore[arg-type]
            state.last_trade_id = max(high, state.last_trade_id or high)
        if replay.any():
            replays = frame.filter(replay)
            log_replays(
                f"binance archive {file.name}",
                tuple(replays.get_column("agg_trade_id").cast(pl.Utf8).to_list()),
                replays.get_column("first_trade_id"),
                replays.get_column("last_trade_id"),
            )
            keep = ~replay
            frame, ts = frame.filter(keep), ts.filter(keep)
        # the schema's columns in one polars pass (its threads share the casts)
        ids = frame.get_column("agg_trade_id")
        out = frame.with_columns(ts).select(
            "ts",
            pl.col("agg_trade_id").cast(pl.Utf8).alias("trade_id"),
            "price",
            pl.col("quantity").alias("amount"),
            taker_side(pl.col("is_buyer_maker")).alias("side"),
        )
        out = columns.to_schema(DataType.TRADES, {c: out.get_column(c) for c in out.columns})
        # aggregate ids rise with time (as the REST source checks every page): an
        # aggregate stamped before an earlier id is garbage, and the file is refused.
        # Checked on the integer ids as read (the same values as ``trade_id``'s text,
        # without parsing 60k strings back per block)
        try:
            state.id_edges = check_trade_id_order(
                pl.DataFrame([ids.alias("trade_id"), ts]), origin=file.name, edges=state.id_edges
            )
        except UnexpectedPayload as exc:
            raise ArchiveUnavailable(file.name, f"implausible: {exc}") from exc
        return out
