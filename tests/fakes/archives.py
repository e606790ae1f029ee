"""A fake bulk-file archive host on loopback: data.binance.vision and public.bitmex.com.

It serves the real layouts (see ``dccd_core.sources.binance.archives`` and
``dccd_core.sources.bitmex.archives``), generated on request from the SAME seeded truth
as the REST fakes (``FakeBinance.markets``' ``MarketData``, ``BitmexFake``), so a run
mixing archive and REST rows can be compared with ``truth_candles``/``truth_trades``:

* Binance: ``/data/{spot,futures/um}/{monthly,daily}/klines/SYM/SPAN/SYM-SPAN-DATE.zip``
  and ``.../aggTrades/SYM/SYM-aggTrades-DATE.zip``, each with ``<file>.CHECKSUM``
  (``<sha256>  <name>``); a zip holds ``<name>.csv``. Replayed aggregates
  (``MarketData.replays``) and backdated ones (``backdated_ms``) are in the files as on
  the REST wire.
* Bybit: ``/trading/SYM/SYMYYYY-MM-DD.csv.gz`` (linear and inverse perpetuals of
  ``FakeBybit``'s tapes), header row, seconds with four decimals; no checksum.
* BitMEX: ``/data/trade/YYYYMMDD.csv.gz``, every symbol of ``bitmex_symbols`` in one
  file, header row, ``2024-01-01D00:00:03.123000000`` timestamps; no checksum.

A period's file exists once the period has closed by ``now_ms()`` (the fake does not
model the publication lag; the reader's plan does).

Knobs (file names as published, e.g. ``BTCUSDT-1m-2024-01-15.zip``, ``20240115.csv.gz``):

* ``micros_from_ms``: Binance spot files of periods starting at or after this instant
  carry µs timestamps (default 2025-01-01, as Binance did); None: never;
* ``header_markets``: Binance markets whose files start with a header row (default
  USD-M only, as now; spot and older files have none);
* ``missing``: files (and their checksum) answering 404;
* ``bad_checksum``: files whose published sha256 is wrong;
* ``truncated``: files cut to half their bytes, published so (the checksum is of the
  cut bytes, so only decompression can notice);
* ``replace(name)``: the file is re-published with different content (one row's amount
  changed) and a new checksum, as Binance has done;
* ``bybit_newest_first``: Bybit files list their rows newest first (their order is
  undocumented);
* ``latency_s``: every reply waits this long (benchmarks);
* ``faults``: a ``FaultInjector`` in front (5xx, resets: the download retries).

``archive_reader_on(exchange, fake)`` serves the fake and yields the registry's reader
on it; ``read_file(reader, key, file)`` reads one file whole (tests only;
``read_file_ingested`` with its ``IngestedFile``).

``requests`` counts the paths asked for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import hashlib
import io
import re
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import polars as pl
from aiohttp import web

from dccd_core.domain import DatasetKey
from dccd_core.sources import columns
from dccd_core.sources.archives.base import ArchiveFile, IngestedFile
from dccd_core.sources.archives.http_reader import HttpArchiveReader
from dccd_core.sources.registry import build_archive_reader
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_market import SPAN_MS, MarketData
from tests.fakes.bitmex import BitmexFake
from tests.fakes.bybit import FakeBybit
from tests.fakes.server import FaultInjector, routes_app, serve

__all__ = [
    "FakeArchives",
    "archive_reader_on",
    "binance_csv",
    "bitmex_csv",
    "bybit_csv",
    "read_file",
    "read_file_ingested",
]

_DAY_MS = 86_400_000
_MICROS_FROM_MS = 1_735_689_600_000  # 2025-01-01
_BINANCE = re.compile(
    r"^/data/(?P<market>spot|futures/um)/(?P<gran>monthly|daily)/"
    r"(?:klines/(?P<ksym>[A-Z0-9]+)/(?P<span>\w+)/(?P=ksym)-(?P=span)-(?P<kdate>[\d-]+)"
    r"|aggTrades/(?P<tsym>[A-Z0-9]+)/(?P=tsym)-aggTrades-(?P<tdate>[\d-]+))"
    r"\.zip(?P<checksum>\.CHECKSUM)?$"
)
_BYBIT = re.compile(r"^/trading/(?P<sym>[A-Z0-9]+)/(?P=sym)(?P<date>\d{4}-\d{2}-\d{2})\.csv\.gz$")
#: native -> unified perpetual symbol (the fake Bybit's linear and inverse markets)
_BYBIT_PERPETUALS = {
    "BTCUSDT": "BTC/USDT:USDT",
    "BTCPERP": "BTC/USDC:USDC",
    "BTCUSD": "BTC/USD:BTC",
}
_BITMEX = re.compile(r"^/data/trade/(?P<date>\d{8})\.csv\.gz$")
_KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
_AGG_HEADER = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
)
_BITMEX_HEADER = (
    "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
    "foreignNotional,trdType"
)


def _ms(year: int, month: int, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000


def _period_ms(date: str) -> tuple[int, int]:
    """``YYYY-MM`` (a month) or ``YYYY-MM-DD`` (a day) -> ``[start_ms, end_ms)``."""
    parts = [int(p) for p in date.split("-")]
    if len(parts) == 3:
        start = _ms(*parts)
        return start, start + _DAY_MS
    year, month = parts
    end = _ms(year + 1, 1) if month == 12 else _ms(year, month + 1)
    return _ms(year, month), end


def _dec(name: str, decimals: int) -> pl.Expr:
    scale = 10**decimals
    return pl.concat_str(
        [
            (pl.col(name) // scale).cast(pl.Utf8),
            pl.lit("."),
            (pl.col(name) % scale).cast(pl.Utf8).str.zfill(decimals),
        ]
    )


def _lines(frame: pl.DataFrame, row: pl.Expr, header: str | None) -> bytes:
    body = frame.select(row.str.join("\n")).item() if frame.height else ""
    text = (header + "\n" if header else "") + (body + "\n" if body else "")
    return text.encode()


def binance_csv(
    data: MarketData,
    kind: str,
    start_ms: int,
    end_ms: int,
    *,
    span: str = "1m",
    ts_factor: int = 1,
    header: bool = False,
    bump_last: bool = False,
) -> bytes:
    """The CSV of one Binance archive file: klines bars opening (or aggregates traded)
    in ``[start_ms, end_ms)``; ``ts_factor`` 1000 writes µs; ``bump_last`` changes the
    last row's size (a re-published file)."""
    if kind == "klines":
        opens = data.bar_opens(span, start_ms, end_ms - 1)
        v = data.bar_values(span, opens)
        frame = pl.DataFrame({"t": opens, **v}).with_columns(
            (pl.col("volume") // 2).alias("tbv"), (pl.col("quote") // 2).alias("tbq")
        )
        if bump_last and frame.height:
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == pl.len() - 1)
                .then(pl.col("volume") + 1)
                .otherwise(pl.col("volume"))
            )
        step = SPAN_MS[span]
        row = pl.concat_str(
            [
                (pl.col("t") * ts_factor).cast(pl.Utf8), _dec("open", 2), _dec("high", 2),
                _dec("low", 2), _dec("close", 2), _dec("volume", 3),
                ((pl.col("t") + step) * ts_factor - 1).cast(pl.Utf8), _dec("quote", 2),
                pl.col("trades").cast(pl.Utf8), _dec("tbv", 3), _dec("tbq", 2), pl.lit("0"),
            ],
            separator=",",
        )  # fmt: skip
        return _lines(frame, row, _KLINE_HEADER if header else None)
    k0, k1 = data.first_k_at(start_ms), data.first_k_at(end_ms)
    k = np.arange(k0, k1, dtype=np.int64)
    src = k
    if data.replays:
        src = np.array([data.replays.get(int(i), int(i)) for i in k], dtype=np.int64)
    v = data.trade_values(src)
    frame = pl.DataFrame(
        {
            "a": k + data.first_id,
            "T": data.trade_ms(src) * ts_factor,
            "p": v["price"],
            "q": v["qty"],
            "m": v["m"],
            "f": (src + data.first_id) * 2,
        }
    )
    if data.backdated_ms:  # garbage aggregates, as on the REST wire (``agg_body``)
        back = np.array([data.backdated_ms.get(int(i), 0) for i in k], dtype=np.int64)
        frame = frame.with_columns(pl.col("T") - pl.Series(back * ts_factor))
    if bump_last and frame.height:
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == pl.len() - 1)
            .then(pl.col("q") + 1)
            .otherwise(pl.col("q"))
        )
    columns = [
        pl.col("a").cast(pl.Utf8), _dec("p", 2), _dec("q", 5), pl.col("f").cast(pl.Utf8),
        (pl.col("f") + 1).cast(pl.Utf8), pl.col("T").cast(pl.Utf8),
        pl.when(pl.col("m")).then(pl.lit("true" if header else "True"))
        .otherwise(pl.lit("false" if header else "False")),
    ]  # fmt: skip
    if not header:  # spot files carry "was the best price match" too
        columns.append(pl.lit("True"))
    return _lines(frame, pl.concat_str(columns, separator=","), _AGG_HEADER if header else None)


def bitmex_csv(fake: BitmexFake, symbols: tuple[str, ...], start_ms: int, end_ms: int) -> bytes:
    """The CSV of BitMEX's daily trade dump: every trade of ``symbols`` in the day, by
    time, with a header row."""
    rows = [(r["timestamp"], n, r) for n in symbols for r in fake._trades(n, start_ms, end_ms - 1)]
    rows.sort(key=lambda item: (item[0], item[1]))
    lines = [_BITMEX_HEADER]
    for stamp, _, r in rows:
        # 2024-01-01T00:00:07.415Z -> 2024-01-01D00:00:07.415000000
        when = stamp.rstrip("Z").replace("T", "D") + "000000"
        home = r.get("homeNotional", "")
        lines.append(
            f"{when},{r['symbol']},{r['side']},{r['size']},{r['price']},{r['tickDirection']},"
            f"{r['trdMatchID']},{r['grossValue']},{home},{r['foreignNotional']},{r['trdType']}"
        )
    return ("\n".join(lines) + "\n").encode()


def bybit_csv(
    fake: FakeBybit, native: str, start_ms: int, end_ms: int, *, newest_first: bool
) -> bytes:
    """The CSV of one Bybit daily trade file of ``native`` (a perpetual)."""
    from dccd_core.domain import Symbol

    symbol = Symbol.parse(_BYBIT_PERPETUALS[native])
    inverse = symbol.settle == symbol.base
    trades = fake.tape(symbol).between(start_ms, end_ms)
    if newest_first:
        trades = trades[::-1]
    lines = [
        "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,"
        "homeNotional,foreignNotional"
    ]
    for t in trades:
        size, price = float(t.size), float(t.price)
        home = size / price if inverse else size
        match_id = uuid.UUID(int=t.trade_id)  # the REST execId of the same trade
        lines.append(
            f"{t.ts_ms // 1000}.{t.ts_ms % 1000:03d}0,{native},{t.side.capitalize()},"
            f"{t.size},{t.price},ZeroPlusTick,{match_id},{round(home * 1e8)},{home},"
            f"{size if inverse else size * price}"
        )
    return ("\n".join(lines) + "\n").encode()


def _zip(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # deterministic bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, content, compresslevel=1)  # fast: a fake serves big days
    return buffer.getvalue()


@dataclass
class FakeArchives:
    """The fake archive host; ``app()`` serves it (module docstring for the knobs)."""

    binance: FakeBinance | None = None
    bitmex: BitmexFake | None = None
    bybit: FakeBybit | None = None
    bybit_newest_first: bool = False
    bitmex_symbols: tuple[str, ...] = ("XBTUSD", "ETHUSD")
    now_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    micros_from_ms: int | None = _MICROS_FROM_MS
    header_markets: frozenset[str] = frozenset({"usdm"})
    missing: set[str] = field(default_factory=set)
    bad_checksum: set[str] = field(default_factory=set)
    truncated: set[str] = field(default_factory=set)
    latency_s: float = 0.0
    faults: FaultInjector | None = None
    requests: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._cache: dict[tuple[str, int], bytes] = {}

    def replace(self, name: str) -> None:
        """Re-publish ``name`` with other content and a new checksum."""
        self._versions[name] = self._versions.get(name, 0) + 1

    # -- files -------------------------------------------------------------------

    def _binance_file(self, match: re.Match[str]) -> tuple[str, bytes] | None:
        if self.binance is None:
            return None
        market = "spot" if match["market"] == "spot" else "usdm"
        kind = "klines" if match["ksym"] else "aggTrades"
        symbol = match["ksym"] or match["tsym"]
        date = match["kdate"] or match["tdate"]
        data = self.binance.markets.get((market, symbol))
        if data is None or (kind == "klines" and match["span"] not in SPAN_MS):
            return None
        monthly = match["gran"] == "monthly"
        if monthly != (len(date) == 7):
            return None
        start_ms, end_ms = _period_ms(date)
        if end_ms > self.now_ms():
            return None
        name = match.group(0).rsplit("/", 1)[1].removesuffix(".CHECKSUM")
        version = self._versions.get(name, 0)
        cached = self._cache.get((name, version))
        if cached is None:
            micros = (
                market == "spot"
                and self.micros_from_ms is not None
                and start_ms >= self.micros_from_ms
            )
            csv = binance_csv(
                data, kind, start_ms, end_ms, span=match["span"] or "1m",
                ts_factor=1000 if micros else 1, header=market in self.header_markets,
                bump_last=version % 2 == 1,
            )  # fmt: skip
            cached = self._finish(name, _zip(name.removesuffix(".zip") + ".csv", csv))
            self._cache[(name, version)] = cached
        return name, cached

    def _bitmex_file(self, match: re.Match[str]) -> tuple[str, bytes] | None:
        if self.bitmex is None:
            return None
        date = match["date"]
        start_ms = _ms(int(date[:4]), int(date[4:6]), int(date[6:]))
        if start_ms + _DAY_MS > self.now_ms():
            return None
        name = f"{date}.csv.gz"
        version = self._versions.get(name, 0)
        cached = self._cache.get((name, version))
        if cached is None:
            csv = bitmex_csv(self.bitmex, self.bitmex_symbols, start_ms, start_ms + _DAY_MS)
            cached = self._finish(name, gzip.compress(csv, compresslevel=1, mtime=0))
            self._cache[(name, version)] = cached
        return name, cached

    def _bybit_file(self, match: re.Match[str]) -> tuple[str, bytes] | None:
        native = match["sym"]
        if self.bybit is None or native not in _BYBIT_PERPETUALS:
            return None
        start_ms, end_ms = _period_ms(match["date"])
        if end_ms > self.now_ms():
            return None
        name = f"{native}{match['date']}.csv.gz"
        version = self._versions.get(name, 0)
        cached = self._cache.get((name, version))
        if cached is None:
            csv = bybit_csv(
                self.bybit, native, start_ms, end_ms, newest_first=self.bybit_newest_first
            )
            cached = self._finish(name, gzip.compress(csv, compresslevel=1, mtime=0))
            self._cache[(name, version)] = cached
        return name, cached

    def _finish(self, name: str, content: bytes) -> bytes:
        return content[: len(content) // 2] if name in self.truncated else content

    def checksum_text(self, name: str, content: bytes) -> str:
        """The ``.CHECKSUM`` body of ``name`` (wrong where ``bad_checksum`` says so)."""
        digest = hashlib.sha256(content).hexdigest()
        if name in self.bad_checksum:
            digest = hashlib.sha256(content + b"x").hexdigest()
        return f"{digest}  {name}\n"

    # -- serving -----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        found: tuple[str, bytes] | None = None
        checksum = False
        # files are generated in a thread: a big day must not stall the loop the
        # reader (and a REST fake) may share with this server
        if (match := _BINANCE.match(request.path)) is not None:
            found = await asyncio.to_thread(self._binance_file, match)
            checksum = bool(match["checksum"])
        elif (match := _BITMEX.match(request.path)) is not None:
            found = await asyncio.to_thread(self._bitmex_file, match)
        elif (match := _BYBIT.match(request.path)) is not None:
            found = await asyncio.to_thread(self._bybit_file, match)
        if found is None or found[0] in self.missing:
            return web.Response(status=404, text="<Error><Code>NoSuchKey</Code></Error>")
        name, content = found
        if checksum:
            return web.Response(body=self.checksum_text(name, content).encode())
        return web.Response(body=content, content_type="application/octet-stream")

    def app(self) -> web.Application:
        middlewares = [self.faults.middleware] if self.faults is not None else []
        return routes_app({"/{tail:.*}": self.handle}, middlewares=middlewares)


@contextlib.asynccontextmanager
async def archive_reader_on(
    exchange: str, fake: FakeArchives, **options: object
) -> AsyncIterator[HttpArchiveReader]:
    """Serve ``fake``; yield ``build_archive_reader(exchange)`` pointed at it (``options``
    set reader attributes, e.g. ``block_bytes``); close both."""
    async with serve(fake.app()) as origin:
        reader = build_archive_reader(exchange, archive_url=origin)
        assert reader is not None, f"{exchange} has no archive reader"
        for name, value in options.items():
            setattr(reader, name, value)
        try:
            yield reader
        finally:
            await reader.aclose()


async def read_file(reader: HttpArchiveReader, key: DatasetKey, file: ArchiveFile) -> pl.DataFrame:
    """Every row of ``file`` in one frame (tests; the planner streams the batches)."""
    return (await read_file_ingested(reader, key, file))[0]


async def read_file_ingested(
    reader: HttpArchiveReader, key: DatasetKey, file: ArchiveFile
) -> tuple[pl.DataFrame, IngestedFile | None]:
    """``read_file``, with the read's verification record."""
    async with reader.read(key, file) as read:
        batches = [batch async for batch in read]
    rows = pl.concat(batches) if batches else columns.empty_frame(key.data_type)
    return rows, read.ingested
