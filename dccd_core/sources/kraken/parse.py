"""Pure parsers of Kraken REST payloads: JSON in, frames in the domain schemas out.

Kraken wraps every answer as ``{"error": [...], "result": {<internal pair>: rows,
"last": cursor}}``, with HTTP 200 even for errors, keyed by its *internal* pair name
(``XXBTZUSD``) whatever name was asked (``XBTUSD``). ``taker_side`` is shared with the
WebSocket parser: REST sends ``b``/``s``, v2 WS ``buy``/``sell``, both the taker's side.

Trade times are JSON *numbers* of seconds with 100 ns digits (``1688669597.8277369``):
more than a float holds (near 1.7e9 s a double is 238 ns apart), so a trades body is
decoded with ``decode_exact`` (numbers with a fraction kept as their text, not orjson's
floats) and ``exact_seconds_to_ns`` turns the text into ns with every digit kept. (The
v2 WebSocket sends RFC 3339 text, parsed exactly by ``iso_to_ns_column``.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import NS_PER_S, DataType, errors

from .. import columns

__all__ = [
    "check_payload",
    "decode_exact",
    "derive_trade_ids",
    "exact_seconds_to_ns",
    "parse_book",
    "parse_candles",
    "parse_trades",
    "result_rows",
    "taker_side",
]

_SIDES = {"b": "buy", "s": "sell", "buy": "buy", "sell": "sell"}
_DECIMAL_SECONDS = re.compile(r"(\d+)(?:\.(\d{1,9}))?")


def decode_exact(body: bytes) -> Any:
    """A JSON body whose numbers with a fraction stay their text (``"1688669597.8277369"``).

    For the trades endpoint's raw body (``JsonResponse.content``): orjson (and any
    float) would round Kraken's 100 ns trade times. The stdlib decoder's ``parse_float``
    hook hands over the number's exact text; the floats of a trades page (one per trade)
    cost well under a millisecond. Bad bodies raise ``json.JSONDecodeError``.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason})", "", exc.start) from exc
    return json.loads(text, parse_float=str)


def exact_seconds_to_ns(name: str, values: Sequence[Any], what: str) -> pl.Series:
    """Epoch seconds to Int64 ns, keeping every digit sent.

    Decimal text (from ``decode_exact``) is converted exactly: ``"1688669597.8277369"``
    -> ``1688669597827736900``; integers too. A float (a body decoded another way) has
    already lost the digits past the microsecond, so it is rounded to the microsecond.
    More than 9 decimals (finer than a ns) or anything else is refused.
    """
    out: list[int] = []
    for value in values:
        if isinstance(value, str):
            match = _DECIMAL_SECONDS.fullmatch(value)
            if match is None:
                raise errors.UnexpectedPayload(
                    f"{what}: {name!r} holds {value!r}, not decimal seconds with at most 9 "
                    "decimals"
                )
            whole, fraction = match.groups()
            out.append(int(whole) * NS_PER_S + int((fraction or "").ljust(9, "0")))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise errors.UnexpectedPayload(f"{what}: {name!r} holds {value!r}, not epoch seconds")
        elif isinstance(value, int):
            out.append(value * NS_PER_S)
        else:
            out.append(round(value * 1_000_000) * 1_000)
    return pl.Series(name, out, dtype=pl.Int64)


def check_payload(data: Any) -> None:
    """Raise for an error inside a 200 body: ``{"error": ["EQuery:Unknown asset pair"]}``.

    Docs: https://docs.kraken.com/api/docs/guides/spot-errors
    """
    if not isinstance(data, dict):
        return
    messages = [str(e) for e in data.get("error") or [] if not str(e).startswith("W")]
    if not messages:
        return
    text = "; ".join(messages)
    if any(e.startswith("EQuery:Unknown asset pair") for e in messages):
        raise errors.UnknownSymbol(f"kraken does not list this pair ({text}); check AssetPairs")
    if any("Rate limit" in e or "Too many requests" in e for e in messages):
        raise errors.RateLimited(f"kraken rate-limited us ({text}): lower the request rate")
    raise errors.ExchangeError(f"kraken reported an error: {text}")


def taker_side(codes: Sequence[Any], what: str) -> pl.Series:
    """``b``/``s`` (REST) or ``buy``/``sell`` (WS v2) -> the taker's side; unknown raises."""
    return columns.side_column(codes, _SIDES, what)


def result_rows(payload: Any, what: str) -> tuple[Any, Any]:
    """The one pair entry of ``result`` (whatever its internal name) and ``result.last``."""
    result = payload.get("result") if isinstance(payload, dict) else None
    if not isinstance(result, dict):
        raise errors.UnexpectedPayload(f"{what}: expected {{'error': [], 'result': {{...}}}}")
    keys = [k for k in result if k != "last"]
    if len(keys) != 1:
        raise errors.UnexpectedPayload(f"{what}: expected one pair in result, got {keys}")
    return result[keys[0]], result.get("last")


def parse_candles(payload: Any) -> pl.DataFrame:
    """``GET /0/public/OHLC`` -> the *committed* bars (ohlc frame, sorted by ts).

    Docs: https://docs.kraken.com/api/docs/rest-api/get-ohlc-data
    Rows ``[time_s, open, high, low, close, vwap, volume, count]`` (prices as strings);
    ``last`` is the open time of the newest committed bar, so rows after it (the
    still-open bar) are dropped: never stored as final. ``quote_volume`` = vwap x volume.
    Sample::

        {"error": [], "result": {"XXBTZUSD": [
            [1704070800, "42110.2", "42391.0", "42060.4", "42305.8", "42227.6",
             "21.40518833", 187]], "last": 1704070800}}
    """
    what = "kraken OHLC"
    rows, last = result_rows(payload, what)
    if isinstance(rows, list) and not rows:
        return columns.empty_frame(DataType.OHLC)
    time_s, open_, high, low, close, vwap, volume, count = columns.rows_to_columns(rows, 8, what)
    vol = columns.float_column("volume", volume, what)
    frame = columns.ohlc_frame(
        columns.seconds_to_ns_column("ts", time_s, what),
        (open_, high, low, close),
        what,
        volume=vol,
        quote_volume=columns.float_column("vwap", vwap, what) * vol,
        trades=columns.int_column("trades", count, what),
    )
    if last is not None:
        last_ts = int(columns.seconds_to_ns_column("last", [last], what)[0])
        frame = frame.filter(pl.col("ts") <= last_ts)
    return frame.sort("ts")


def derive_trade_ids(
    ts: pl.Series, price: pl.Series, amount: pl.Series, side: pl.Series
) -> pl.Series:
    """A deterministic id where the row has none: ``{ts}-{rank}-{side}-{price}-{amount}``.

    ``rank`` counts the trades sharing ``ts`` in arrival order, so a page that re-asks a
    timestamp (the trade cursor overlaps by design) rebuilds the same ids.
    """
    frame = pl.DataFrame([ts.alias("ts"), price.alias("p"), amount.alias("a"), side.alias("s")])
    return frame.select(
        pl.concat_str(
            [
                pl.col("ts"),
                pl.int_range(pl.len()).over("ts"),
                pl.col("s").str.slice(0, 1),
                pl.col("p"),
                pl.col("a"),
            ],
            separator="-",
        ).alias("trade_id")
    ).to_series()


def parse_trades(payload: Any) -> tuple[pl.DataFrame, int | None]:
    """``GET /0/public/Trades`` -> (trades frame in arrival order, ``last`` cursor in ns).

    Docs: https://docs.kraken.com/api/docs/rest-api/get-recent-trades
    Rows ``[price, volume, time_s, b|s, m|l, misc, trade_id]``; rows recorded before
    trade ids existed have six fields (ids are then derived). ``time_s`` has 100 ns
    digits: decode the body with ``decode_exact`` to keep them (see the module). Sample::

        {"error": [], "result": {"XXBTZUSD": [
            ["30243.40000", "0.34507674", 1688669597.8277369, "b", "m", "", 61044952]],
         "last": "1688671969993150842"}}
    """
    what = "kraken trades"
    rows, last = result_rows(payload, what)
    last_ns = int(last) if last not in (None, "") else None
    if isinstance(rows, list) and not rows:
        return columns.empty_frame(DataType.TRADES), last_ns
    has_ids = all(isinstance(r, list) and len(r) >= 7 for r in rows)
    cols = columns.rows_to_columns(rows, 7 if has_ids else 4, what)
    ts = exact_seconds_to_ns("ts", cols[2], what)
    price = columns.float_column("price", cols[0], what)
    amount = columns.float_column("amount", cols[1], what)
    side = taker_side(cols[3], what)
    if has_ids:
        ids = columns.int_column("trade_id", cols[6], what).cast(pl.String)
    else:
        raw_price = pl.Series(cols[0], strict=False).cast(pl.String)
        raw_amount = pl.Series(cols[1], strict=False).cast(pl.String)
        ids = derive_trade_ids(ts, raw_price, raw_amount, side)
    frame = columns.to_schema(
        DataType.TRADES,
        {"ts": ts, "trade_id": ids, "price": price, "amount": amount, "side": side},
    )
    return frame, last_ns


def parse_book(payload: Any, depth: int, received_ts: int) -> pl.DataFrame:
    """``GET /0/public/Depth`` -> book frame, ``depth`` levels a side, stamped on receipt.

    Docs: https://docs.kraken.com/api/docs/rest-api/get-order-book
    Levels ``[price, volume, timestamp_s]`` (the time each level last changed). Sample::

        {"error": [], "result": {"XXBTZUSD": {
            "asks": [["30384.10000", "2.059", 1688671659]],
            "bids": [["30297.00000", "0.115", 1688671656]]}}}
    """
    what = "kraken Depth"
    book, _ = result_rows(payload, what)
    if not isinstance(book, dict) or "bids" not in book or "asks" not in book:
        raise errors.UnexpectedPayload(f"{what}: expected bids and asks")
    sides = []
    for levels, descending in ((book["bids"], True), (book["asks"], False)):
        sides.append(
            columns.levels_frame(levels, what).sort("price", descending=descending).head(depth)
        )
    return columns.book_frame(received_ts, sides[0], sides[1])
