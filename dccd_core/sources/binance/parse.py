"""Pure Binance parsers: decoded JSON in, polars frames in the domain schemas out.

Every parser works per column (one polars construction per field, no per-row
objects), accepts numbers sent as strings and strings sent as numbers (ccxt's
recordings stringify ``a``/``T``; the live API sends numbers), and raises
``UnexpectedPayload`` on a missing or malformed value instead of storing a null.
The WS stream reuses ``parse_trades`` and ``taker_side``, so REST and WS map
Binance's maker flag ``m`` the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import polars as pl

from dccd_core.domain import NS_PER_MS, DataType, errors

from .. import columns

__all__ = [
    "AggTrades",
    "check_payload",
    "parse_book",
    "parse_candles",
    "parse_trades",
    "parse_trades_page",
    "taker_side",
]

log = logging.getLogger(__name__)

_AGG_FIELDS = {"a": pl.Utf8, "p": pl.Utf8, "q": pl.Utf8, "T": pl.Utf8, "m": pl.Boolean}
#: first and last trade id of an aggregate: always sent by the live API, absent from
#: some older recordings (then no replay can be recognised, see ``parse_trades_page``)
_RANGE_FIELDS = {"f": pl.Utf8, "l": pl.Utf8}


def check_payload(data: Any) -> None:
    """Binance reports API errors as ``{"code": -1121, "msg": "Invalid symbol."}``.

    Used as the HTTP client's ``check_payload`` hook so that an error inside a 200 body
    becomes an ``ExchangeError``, never an empty page.
    """
    if isinstance(data, dict) and "code" in data and "msg" in data:
        try:
            code = int(data["code"])
        except (TypeError, ValueError):
            code = -1
        if code < 0:
            raise errors.ExchangeError(f"binance error {code}: {data['msg']}")


#: index by Binance's ``m`` (buyer is maker): False -> taker bought, True -> taker sold.
_SIDES = pl.Series("side", ["buy", "sell"], dtype=pl.Utf8)


def taker_side(buyer_is_maker: pl.Expr) -> pl.Expr:
    """Binance ``m`` is "the buyer was the maker": then the taker sold.

    ``m=true`` -> ``"sell"``, ``m=false`` -> ``"buy"``.
    """
    return pl.when(buyer_is_maker).then(pl.lit("sell")).otherwise(pl.lit("buy"))


def parse_candles(data: Any) -> pl.DataFrame:
    """``/api/v3/klines`` (and ``/fapi/v1/klines``) rows to the ohlc schema.

    Docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#klinecandlestick-data
    Sample row (open time ms, o, h, l, c, volume, close time, quote volume, trades,
    taker buy base, taker buy quote, ignore)::

        [1704070800000, "42110.25000000", "42388.00000000", "42051.10000000",
         "42307.64000000", "18.40213000", 1704074399999, "776214.30561200", 3128,
         "9.71834000", "409850.11742310", "0"]

    ``ts`` is the open time (Binance stamps bars at their open).
    """
    if not isinstance(data, list):
        raise errors.UnexpectedPayload(
            f"binance klines: expected a list, got {type(data).__name__}"
        )
    if not data:
        return columns.empty_frame(DataType.OHLC)
    try:
        shortest = min(map(len, data))
    except TypeError:
        shortest = 0
    if shortest < 9 or not isinstance(data[0], list):
        bad = next((r for r in data if not (isinstance(r, list) and len(r) >= 9)), data[0])
        raise errors.UnexpectedPayload(f"binance klines: expected rows of >= 9 fields, got {bad!r}")
    cols = list(zip(*data, strict=False))
    what = "binance klines"
    frame = columns.ohlc_frame(
        columns.ms_to_ns_column("ts", cols[0], what),
        (cols[1], cols[2], cols[3], cols[4]),
        what,
        volume=columns.float_column("volume", cols[5], what),
        quote_volume=columns.float_column("quote_volume", cols[7], what),
        trades=columns.int_column("trades", cols[8], what),
    )
    return frame.sort("ts") if not frame.get_column("ts").is_sorted() else frame


@dataclass(frozen=True, slots=True)
class AggTrades:
    """One aggTrades payload parsed, replayed aggregates dropped (see
    ``parse_trades_page``)."""

    #: the trades schema, without the replays
    rows: pl.DataFrame
    #: aggregate ids (``a``, as text like ``trade_id``) dropped as replays
    replayed: tuple[str, ...]
    #: ``f`` of each row of ``rows`` (Int64), None when the payload carries no ``f``/``l``
    first_trade_ids: pl.Series | None
    #: the highest ``l`` of the payload, replays included (None: no rows or no ``l``)
    last_trade_id: int | None
    #: the highest aggregate id received, replays included
    last_agg_id: int | None
    #: rows the exchange sent, replays included (a full page is judged on this)
    received: int


def _replays(first: pl.Series, last: pl.Series, after: int | None) -> pl.Series:
    """True where a row's trades ``[f, l]`` were all delivered before it: ``f`` is at or
    below the highest ``l`` of the rows before it (and of ``after``), in id order."""
    before = last.cum_max().shift(1)
    if after is not None:
        before = before.fill_null(after).clip(lower_bound=after)
    return (first <= before).fill_null(False)


def parse_trades_page(
    data: Any,
    *,
    after_trade_id: int | None = None,
    after_agg_id: int | None = None,
    origin: str = "binance aggTrades",
) -> AggTrades:
    """``/api/v3/aggTrades`` objects to the trades schema, replays dropped.

    Docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#compressedaggregate-trades-list
    Sample::

        {"a": 2650118342, "p": "42117.53000000", "q": "0.00125000", "f": 3190552807,
         "l": 3190552808, "T": 1704070812345, "m": true, "M": true}

    ``m`` (buyer is maker) true -> the taker sold -> ``side = "sell"``.

    Each aggregate ``a`` bundles the consecutive trades ``f..l``, so aggregates in id
    order cover consecutive trade ranges. Binance's history holds re-sent aggregates
    (ccxt issue #8329: ``fromId=1195414`` answers ``a=1195416`` with the ``f``, ``l``,
    time, price and size of ``a=1195414``): an aggregate whose ``f`` is at or below the
    highest ``l`` before it (in the payload, or ``after_trade_id`` from an earlier page)
    brings no new trade. It is dropped, its id returned in ``replayed`` and logged once
    per payload. A replay has a *new* aggregate id: ids must rise strictly through the
    payload and past ``after_agg_id`` (the highest id of earlier pages), so a row or a
    page sent twice is not taken for one. Everything else is kept as sent: an aggregate
    that is not a replay but goes back in time is left for ``check_trade_id_order`` to
    refuse, repeated ids for the id checks.
    """
    if not isinstance(data, list):
        raise errors.UnexpectedPayload(
            f"binance aggTrades: expected a list, got {type(data).__name__}"
        )
    if not data:
        return AggTrades(columns.empty_frame(DataType.TRADES), (), None, None, None, 0)
    if not all(isinstance(row, dict) for row in data):
        raise errors.UnexpectedPayload("binance aggTrades: expected a list of objects")
    with_range = all("f" in row and "l" in row for row in data)
    schema = {**_AGG_FIELDS, **_RANGE_FIELDS} if with_range else _AGG_FIELDS
    raw = pl.from_dicts(data, schema=schema, strict=False)
    if any(column.null_count() for column in raw.get_columns()):
        bad = next((row for row in data if any(row.get(k) is None for k in schema)), data[0])
        raise errors.UnexpectedPayload(f"binance aggTrades: missing or malformed field in {bad!r}")
    try:
        ts = raw.get_column("T").cast(pl.Int64) * NS_PER_MS
        agg_id = raw.get_column("a").cast(pl.Int64)
        price = raw.get_column("p").cast(pl.Float64)
        amount = raw.get_column("q").cast(pl.Float64)
        first = raw.get_column("f").cast(pl.Int64) if with_range else None
        last = raw.get_column("l").cast(pl.Int64) if with_range else None
    except pl.exceptions.InvalidOperationError as exc:
        raise errors.UnexpectedPayload(f"binance aggTrades: malformed value ({exc})") from None
    side = _SIDES.gather(raw.get_column("m").cast(pl.UInt32))
    trade_id = agg_id.cast(pl.Utf8)
    rows = pl.DataFrame(
        [
            ts.alias("ts"),
            trade_id.alias("trade_id"),
            price.alias("price"),
            amount.alias("amount"),
            side.alias("side"),
        ]
    )
    last_agg = int(agg_id.max())  # type: ignore[arg-type]
    if first is None or last is None:
        return AggTrades(rows, (), None, None, last_agg, raw.height)
    high = int(last.max())  # type: ignore[arg-type]
    if after_trade_id is not None:
        high = max(high, after_trade_id)
    replayed: tuple[str, ...] = ()
    # ids not rising strictly are refused by the id checks, not patched here
    if raw.height == 1 or bool((agg_id.diff().drop_nulls() > 0).all()):
        mask = _replays(first, last, after_trade_id)
        if after_agg_id is not None:
            mask = mask & (agg_id > after_agg_id)
        if mask.any():
            replayed = tuple(trade_id.filter(mask).to_list())
            log_replays(origin, replayed, first.filter(mask), last.filter(mask))
            keep = ~mask
            rows, first = rows.filter(keep), first.filter(keep)
    return AggTrades(rows, replayed, first, high, last_agg, raw.height)


def log_replays(origin: str, ids: tuple[str, ...], first: pl.Series, last: pl.Series) -> None:
    """One line per page for the aggregates dropped as replays."""
    shown = ", ".join(
        f"a={a} (trades {f}..{lt})"
        for a, f, lt in zip(ids[:10], first.to_list(), last.to_list(), strict=False)
    )
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    log.warning(
        "%s: dropped %d replayed aggregate trade(s) %s%s: their trades were already "
        "delivered by earlier aggregates (a known Binance quirk), not stored twice",
        origin,
        len(ids),
        shown,
        more,
    )


def parse_trades(data: Any) -> pl.DataFrame:
    """``/api/v3/aggTrades`` objects (or aggTrade stream events) to the trades schema
    (``trade_id`` = aggregate id), replays inside ``data`` dropped: see
    ``parse_trades_page``."""
    return parse_trades_page(data).rows


def parse_book(data: Any, depth: int, received_ts: int) -> pl.DataFrame:
    """``/api/v3/depth`` (``/fapi/v1/depth``) to the book schema, level 0 = best.

    Docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#order-book
    Sample (futures add ``"E"`` event and ``"T"`` transaction time in ms)::

        {"lastUpdateId": 40127755,
         "bids": [["42117.52000000", "0.01230000"], ...],
         "asks": [["42117.53000000", "0.40500000"], ...]}

    ``ts`` is ``T`` where the exchange sends it, else ``received_ts`` (spot has none).
    """
    if not isinstance(data, dict) or "bids" not in data or "asks" not in data:
        raise errors.UnexpectedPayload("binance depth: expected an object with 'bids' and 'asks'")
    what = "binance depth"
    ts = received_ts
    if data.get("T") is not None:
        ts = int(columns.ms_to_ns_column("ts", [data["T"]], what)[0])
    return columns.book_frame(
        ts,
        columns.levels_frame(data["bids"], f"{what} bids", depth=depth),
        columns.levels_frame(data["asks"], f"{what} asks", depth=depth),
    )
