"""Wire values to typed polars columns: the one set of builders every native parser uses.

Why one module: exchanges send the same number as a JSON number on one endpoint and a
string on the next (Kraken OHLC, Coinbase trades; ccxt's recordings even flip them), so
every builder accepts both, and refuses everything else (``None``, booleans, words,
NaN, lists) with ``UnexpectedPayload`` naming the column and the bad values: a changed
wire format must stop a backfill, not write nulls or NaNs into the lake for good. When
each exchange had its own copy the copies drifted (one let ``true`` through as 1.0,
one let ``"nan"`` through); now a rule changes in one place for REST and WS alike.

The work is per column, not per row: one Python list per field (``rows_to_columns``
transposes row arrays), one type scan, one polars cast. Numbers take the fast path
(``[42315.5, 42316.0]`` straight to Float64); strings are parsed by polars
(``["42315.5", "42316"]``); a mix of both goes through text.

Behaviours chosen where the old copies differed (the strictest won):

* ``bool`` is never a number, ``NaN`` and infinities are never prices;
* integer columns refuse fractional values *and* floats such as ``5.0`` or ``"5.0"``
  (an id or a count sent as a float means the format changed);
* text columns take strings and integers (ids sent as numbers), not floats, booleans
  or empty strings;
* ISO times must be strings of the ``2024-01-01T00:00:01.500Z`` form (fraction
  optional, any number of digits up to ns);
* sides map through the exchange's own spellings only (``Buy`` on Bybit, ``buy`` on
  OKX); an unknown spelling raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import polars as pl

from dccd_core.domain import NS_PER_MS, DataType, UnexpectedPayload, schema_for

__all__ = [
    "WS_CANDLES_SCHEMA",
    "book_frame",
    "ceil_ms",
    "empty_frame",
    "float_column",
    "float_levels",
    "funding_frame",
    "int_column",
    "iso_to_ns_column",
    "json_list",
    "level_texts",
    "levels_frame",
    "ms_to_ns_column",
    "object_columns",
    "ohlc_frame",
    "price_candles_frame",
    "rows_to_columns",
    "seconds_to_ns_column",
    "side_column",
    "text_column",
    "to_schema",
]

_NUMBERS = frozenset({int, float})
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_FIRST, _SECOND = itemgetter(0), itemgetter(1)


def _sample(values: Sequence[Any], bad: Any) -> list[Any]:
    """Up to three of ``values`` for which ``bad(value)`` holds (error messages only)."""
    out = []
    for value in values:
        if bad(value):
            out.append(value)
            if len(out) == 3:
                break
    return out


def _refuse_types(
    name: str, values: Sequence[Any], kinds: set[type], allowed: frozenset[type], what: str
) -> None:
    if kinds <= allowed:
        return
    bad = _sample(values, lambda v: type(v) not in allowed)
    raise UnexpectedPayload(
        f"{what}: {name!r} holds {bad} where {_describe(allowed)} are due; "
        "the exchange changed its format (or sent a placeholder)"
    )


def _describe(allowed: frozenset[type]) -> str:
    if allowed >= _NUMBERS:
        return "numbers"
    if int in allowed:
        return "integers"
    return "strings" if str in allowed else "values"


def _cast(
    name: str, values: Sequence[Any], dtype: pl.DataType, allowed: frozenset[type], what: str,
    *, optional: bool,
) -> pl.Series:
    """Values of the ``allowed`` Python types (``None`` too if ``optional``) to ``dtype``."""
    values = values if isinstance(values, list) else list(values)
    text: pl.Series | None = None
    if values and type(values[0]) is str:  # the usual wire form: polars checks the types
        try:
            text = pl.Series(name, values, dtype=pl.String, strict=True)
        except (TypeError, ValueError, pl.exceptions.PolarsError):
            text = None  # not all strings (or None): the type scan below says what
    if text is not None:
        nulls = text.null_count()
        if nulls and not optional:
            _refuse_types(name, values, {type(None)}, allowed, what)
        series = text.cast(dtype, strict=False)
    else:
        kinds = set(map(type, values))
        nulls = 0
        if optional and type(None) in kinds:
            kinds.discard(type(None))
            nulls = sum(1 for v in values if v is None)
        _refuse_types(name, values, kinds, allowed, what)
        if kinds <= _NUMBERS:  # JSON numbers: polars builds the column directly
            series = pl.Series(name, values, dtype=dtype, strict=False)
        else:  # text and numbers mixed: through text
            mixed = pl.Series(name, values, dtype=pl.String, strict=False)
            series = mixed.cast(dtype, strict=False)
    if series.null_count() != nulls:  # a present value that did not parse
        unreadable = _sample(
            [v for v, ok in zip(values, series.is_not_null(), strict=True) if not ok],
            lambda v: v is not None,
        )
        raise UnexpectedPayload(f"{what}: {name!r} holds unreadable values {unreadable}")
    return series


def float_column(
    name: str, values: Sequence[Any], what: str, *, optional: bool = False
) -> pl.Series:
    """Float64 from numbers or numeric strings; ``optional`` lets JSON ``null`` through.

    ``what`` names the payload in errors (``"okx history-trades"``).
    """
    series = _cast(name, values, pl.Float64(), _NUMBERS | {str}, what, optional=optional)
    if not math.isfinite(series.sum()):  # NaN or inf anywhere (nulls are skipped)
        raise UnexpectedPayload(f"{what}: {name!r} holds NaN or infinity")
    return series


def int_column(
    name: str, values: Sequence[Any], what: str, *, optional: bool = False
) -> pl.Series:
    """Int64 from integers or integer strings (no floats); ``optional`` allows ``null``."""
    return _cast(name, values, pl.Int64(), frozenset({int, str}), what, optional=optional)


def text_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Non-empty strings; integers (ids sent as numbers) are printed."""
    series = _cast(name, values, pl.String(), frozenset({int, str}), what, optional=False)
    if (series.str.len_bytes() == 0).any():
        raise UnexpectedPayload(f"{what}: {name!r} holds an empty string")
    return series


def ms_to_ns_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Epoch milliseconds (integers or integer strings) to Int64 ns."""
    return (int_column(name, values, what) * NS_PER_MS).alias(name)


def seconds_to_ns_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Epoch seconds (int, float or numeric string) to Int64 ns.

    Floats are rounded to the microsecond first, as a float second carries no more
    (``1688669597.8277369`` -> ``...827737000``; matches ``domain.s_to_ns``).
    """
    secs = float_column(name, values, what)
    return ((secs * 1_000_000).round(0).cast(pl.Int64) * 1_000).alias(name)


def iso_to_ns_column(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """ISO-8601 UTC strings (``2024-01-01T02:59:58.123456Z``, fraction optional) to ns."""
    values = values if isinstance(values, list) else list(values)
    _refuse_types(name, values, set(map(type, values)), frozenset({str}), what)
    text = pl.Series(name, values, dtype=pl.String)
    parsed = text.str.to_datetime(_ISO_FORMAT, time_unit="ns", strict=False)
    if parsed.null_count():
        bad = text.filter(parsed.is_null()).head(3).to_list()
        raise UnexpectedPayload(
            f"{what}: {name!r} holds times that are not ISO-8601 UTC "
            f"(like 2024-01-01T00:00:01.500Z): {bad}"
        )
    return parsed.cast(pl.Int64).alias(name)


def rows_to_columns(rows: Any, width: int, what: str) -> list[tuple[Any, ...]]:
    """A JSON list of row arrays to its first ``width`` columns, checking the shape.

    Longer rows are fine (exchanges append fields); shorter or non-list rows raise.
    An empty list gives ``width`` empty columns.
    """
    if not isinstance(rows, list):
        raise UnexpectedPayload(f"{what}: expected a JSON list of rows, got {type(rows).__name__}")
    if not rows:
        return [() for _ in range(width)]
    for row in rows:
        if not isinstance(row, list) or len(row) < width:
            raise UnexpectedPayload(
                f"{what}: expected rows of at least {width} fields, got {row!r:.200}"
            )
    return list(zip(*rows, strict=False))[:width]


def json_list(data: Any, what: str) -> list[Any]:
    """``data`` if the body is a JSON list (of rows or objects), else ``UnexpectedPayload``."""
    if not isinstance(data, list):
        raise UnexpectedPayload(f"{what}: expected a JSON list, got {type(data).__name__}")
    return data


def object_columns(
    rows: Sequence[Any], keys: Sequence[str], what: str, item: str = "trade"
) -> list[list[Any]]:
    """JSON objects to one list per key, in ``keys`` order (``[[row["ts"], ...], ...]``):
    a missing key or a row that is not an object raises ``UnexpectedPayload``."""
    try:
        return [[row[k] for row in rows] for k in keys]
    except (KeyError, TypeError) as exc:
        raise UnexpectedPayload(f"{what}: {item} without {exc}") from None


def side_column(values: Sequence[Any], sides: Mapping[str, str], what: str) -> pl.Series:
    """The exchange's side codes to ``buy``/``sell`` through ``sides``; unknown raises.

    ``sides`` is the exchange's own table (``{"Buy": "buy", "Sell": "sell"}``, or maker
    to taker ``{"buy": "sell", "sell": "buy"}`` for Coinbase): the one mapping its REST
    and WS parsers share.
    """
    values = values if isinstance(values, list) else list(values)
    _refuse_types("side", values, set(map(type, values)), frozenset({str}), what)
    codes = pl.Series("side", values, dtype=pl.String)
    mapped = codes.replace_strict(dict(sides), default=None, return_dtype=pl.String)
    if mapped.null_count():
        bad = codes.filter(mapped.is_null()).unique(maintain_order=True).head(3).to_list()
        raise UnexpectedPayload(f"{what}: unknown trade sides {bad}; expected {sorted(sides)}")
    return mapped


def levels_frame(levels: Any, what: str, *, depth: int | None = None) -> pl.DataFrame:
    """Book levels ``[[price, amount, ...], ...]`` (first ``depth``) to a Float64 frame
    of ``price`` and ``amount``, in the order sent."""
    if not isinstance(levels, list):
        raise UnexpectedPayload(f"{what}: expected a list of levels, got {levels!r:.200}")
    price, amount = rows_to_columns(levels[:depth] if depth else levels, 2, what)
    return pl.DataFrame(
        [float_column("price", price, what), float_column("amount", amount, what)]
    )


def level_texts(levels: Any, what: str) -> list[tuple[str, str]]:
    """WS book levels ``[[price, amount, ...], ...]`` to their (price, amount) texts as
    sent (numbers printed), for checksums over the exchange's own digits."""
    prices, amounts = _level_values(levels, what)
    return list(zip(map(str, prices), map(str, amounts), strict=True))


def float_levels(levels: Any, what: str) -> list[tuple[float, float]]:
    """WS book levels ``[[price, amount, ...], ...]`` (or their texts) to (price, amount)
    floats, with the rules of :func:`float_column`.

    Level by level on purpose: a WS delta carries a handful of levels and the live book
    keeps them as tuples, so a polars round trip would cost more than it saves.
    """
    prices, amounts = _level_values(levels, what)
    try:
        price_values = list(map(float, prices))
        amount_values = list(map(float, amounts))
    except ValueError:
        bad = [lv for lv in levels if not _is_float_text(lv[0]) or not _is_float_text(lv[1])]
        raise UnexpectedPayload(f"{what}: levels with unreadable numbers {bad[:3]}") from None
    if not math.isfinite(sum(price_values) + sum(amount_values)):  # NaN or inf anywhere
        raise UnexpectedPayload(f"{what}: a level holds NaN or infinity")
    return list(zip(price_values, amount_values, strict=True))


def _level_values(levels: Any, what: str) -> tuple[list[Any], list[Any]]:
    if not isinstance(levels, list):
        raise UnexpectedPayload(f"{what}: expected a list of levels, got {levels!r:.200}")
    try:
        prices = list(map(_FIRST, levels))
        amounts = list(map(_SECOND, levels))
    except (TypeError, IndexError, KeyError):
        raise UnexpectedPayload(f"{what}: levels must be [price, amount] lists") from None
    _refuse_types("price", prices, set(map(type, prices)), _NUMBERS | {str}, what)
    _refuse_types("amount", amounts, set(map(type, amounts)), _NUMBERS | {str}, what)
    return prices, amounts


def _is_float_text(value: Any) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def book_frame(ts: int, bids: pl.DataFrame, asks: pl.DataFrame) -> pl.DataFrame:
    """Bid and ask levels (``price`` and ``amount`` columns, best first) to the book
    schema, every row stamped ``ts`` (ns); level 0 is the best."""
    return pl.concat(
        levels.select(
            pl.lit(ts, dtype=pl.Int64).alias("ts"),
            pl.lit(side, dtype=pl.String).alias("side"),
            pl.int_range(pl.len(), dtype=pl.Int32).alias("level"),
            pl.col("price").cast(pl.Float64),
            pl.col("amount").cast(pl.Float64),
        )
        for side, levels in (("bid", bids), ("ask", asks))
    )


_SCHEMAS: dict[DataType, pl.Schema] = {dt: pl.Schema(schema_for(dt)) for dt in DataType}
#: streamed candles: the ohlc schema plus the Boolean ``closed`` (only closed bars are stored)
WS_CANDLES_SCHEMA = pl.Schema([*_SCHEMAS[DataType.OHLC].items(), ("closed", pl.Boolean())])


def empty_frame(data_type: DataType) -> pl.DataFrame:
    """A zero-row frame in the exact schema of ``data_type``."""
    return pl.DataFrame(schema=_SCHEMAS[data_type])


def to_schema(data_type: DataType, columns: Mapping[str, pl.Series]) -> pl.DataFrame:
    """Columns to the exact domain schema, in its order; absent columns (nullable ones,
    e.g. ``quote_volume``) become nulls."""
    n = len(next(iter(columns.values()))) if columns else 0
    return pl.DataFrame(
        [
            columns[name].cast(dtype).alias(name)
            if name in columns
            else pl.Series(name, [None] * n, dtype=dtype)
            for name, dtype in _SCHEMAS[data_type].items()
        ]
    )


def ohlc_frame(
    ts: pl.Series,
    prices: Sequence[Sequence[Any]],
    what: str,
    **more: pl.Series,
) -> pl.DataFrame:
    """Bars in the ohlc schema: ``ts`` (ns), the (open, high, low, close) values as sent
    (numbers or numeric texts) and ``more`` of ``volume``, ``quote_volume``, ``trades``
    (the absent ones nulls). Unsorted: each exchange knows its order and duplicates."""
    named = dict(zip(("open", "high", "low", "close"), prices, strict=True))
    return to_schema(
        DataType.OHLC,
        {"ts": ts, **{n: float_column(n, v, what) for n, v in named.items()}, **more},
    )


def price_candles_frame(rows: Any, what: str) -> pl.DataFrame:
    """Mark or index price bars sent as ``[open time ms, open, high, low, close, ...]``
    rows (Binance, Bybit and OKX alike; longer rows are fine) in the ohlc columns, volumes
    null (a price index trades nothing), sorted by ts."""
    ts, *prices = rows_to_columns(rows, 5, what)
    return ohlc_frame(ms_to_ns_column("ts", ts, what), prices, what).sort("ts")


def funding_frame(
    ts: pl.Series,
    rates: Sequence[Any],
    what: str,
    *,
    mark_prices: Sequence[Any] | None = None,
    interval_h: Sequence[Any] | None = None,
) -> pl.DataFrame:
    """Rows in the funding schema: ``ts`` (ns), the rates as sent (numbers or numeric
    texts), and where the exchange sends them the mark prices (an empty text is "not
    known": Binance's oldest rows) and the funding interval in hours."""
    columns = {"ts": ts, "rate": float_column("rate", rates, what)}
    if mark_prices is not None:
        known = [None if v == "" else v for v in mark_prices]
        columns["mark_price"] = float_column("mark_price", known, what, optional=True)
    if interval_h is not None:
        columns["interval_h"] = int_column("interval_h", interval_h, what, optional=True)
    return to_schema(DataType.FUNDING, columns)


def open_interest_frame(
    times_ms: Sequence[Any],
    amounts: Sequence[Any],
    what: str,
    *,
    values: Sequence[Any] | None = None,
) -> pl.DataFrame:
    """Samples in the open-interest schema, sorted by ts: the sample times in ms, the open
    interest as sent (numbers or numeric texts) and, where the exchange sends it, its
    value in the quote (null otherwise)."""
    columns = {
        "ts": ms_to_ns_column("ts", times_ms, what),
        "open_interest": float_column("open_interest", amounts, what),
    }
    if values is not None:
        columns["open_interest_value"] = float_column(
            "open_interest_value", values, what, optional=True
        )
    return to_schema(DataType.OPEN_INTEREST, columns).sort("ts")


def ceil_ms(ts: int) -> int:
    """ns to whole ms rounding up, for request bounds: ``x_ms < ceil_ms(end_ts)`` iff
    ``x_ms * 1e6 < end_ts`` (the inverse of ``ms_to_ns_column`` at an exclusive end)."""
    return -(-ts // NS_PER_MS)
