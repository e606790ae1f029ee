"""Pure Bitfinex v2 parsers: JSON lists in, polars frames in the domain schemas out.

REST and WebSocket rows have the same layouts, so the WS parser (``ws.py``) calls the
functions here: one side mapping (``AMOUNT > 0`` = the taker bought) for both paths.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import errors
from dccd_core.transport.retry import TransientError

from .. import columns

__all__ = [
    "MAINTENANCE",
    "check_payload",
    "parse_book",
    "parse_candles",
    "parse_trades",
    "side_from_amount",
]

#: Bitfinex's error code while the platform is in maintenance (transient).
MAINTENANCE = 20060


def check_payload(data: Any) -> None:
    """Raise ``ExchangeError`` for Bitfinex error bodies; return for data.

    Bitfinex answers errors as ``["error", 10020, "limit: invalid"]`` (HTTP 500 for
    bad parameters, sometimes 200), ``["error", 20060, "maintenance"]`` and, when an
    IP exceeds its budget, ``{"error": "ERR_RATE_LIMIT"}`` (then blocks it for 60 s).

    What an error means for a retry is decided before this hook, by the HTTP client
    with the exchange's table (``rest.ERRORS``: 20060 maintenance transient, 11010 and
    ERR_RATE_LIMIT rate limits, 10020 permanent); this hook gives a permanent error its
    wording. Called on its own, maintenance still raises ``TransientError`` and a rate
    limit ``RateLimited``; every other API error is final: retrying a bad parameter
    cannot help.
    """
    if isinstance(data, list) and len(data) >= 2 and data[0] == "error":
        code = data[1]
        message = data[2] if len(data) > 2 else ""
        if code == 11010:
            raise errors.RateLimited(
                f"bitfinex rate limit hit ({code} {message}); slow down and retry"
            )
        if code == MAINTENANCE:
            raise TransientError(
                f"bitfinex is in maintenance ({code} {message}); retry in a few minutes",
                "server",
            )
        raise errors.ExchangeError(f"bitfinex error {code}: {message}")
    if isinstance(data, dict) and "error" in data:
        if data["error"] == "ERR_RATE_LIMIT":
            raise errors.RateLimited(
                "bitfinex rate limit hit (ERR_RATE_LIMIT): the IP is blocked for about 60 s; "
                "lower the request rate"
            )
        raise errors.ExchangeError(f"bitfinex error: {data.get('message') or data['error']}")


def side_from_amount(amount: pl.Series) -> pl.Series:
    """Bitfinex signs the amount with the taker's side: positive = buy, negative = sell."""
    return pl.select(
        pl.when(amount > 0).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side")
    ).to_series()


def parse_candles(rows: Any) -> pl.DataFrame:
    """``/v2/candles/trade:1m:tBTCUSD/hist`` rows -> ohlc frame sorted by ts.

    Docs: https://docs.bitfinex.com/reference/rest-public-candles . Row layout
    ``[MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]`` (note: close before high), MTS = bar open
    in ms; volume in base currency; no quote volume, no trade count::

        [[1704067200000, 42280, 42310.5, 42398, 42190.1, 18.73410562],
         [1704070800000, 42310.5, 42205, 42350, 42160.7, 21.0952]]
    """
    what = "bitfinex candles"
    mts, opn, cls, high, low, vol = columns.rows_to_columns(rows, 6, what)
    frame = columns.ohlc_frame(  # no quote volume, no trade count: nulls
        columns.ms_to_ns_column("ts", mts, what),
        (opn, high, low, cls),
        what,
        volume=columns.float_column("volume", vol, what),
    )
    return frame.sort("ts").unique("ts", keep="last", maintain_order=True)


def parse_trades(rows: Any) -> pl.DataFrame:
    """``/v2/trades/tBTCUSD/hist`` rows (or WS ``te`` rows) -> trades frame.

    Docs: https://docs.bitfinex.com/reference/rest-public-trades . Row layout
    ``[ID, MTS, AMOUNT, PRICE]``; the sign of AMOUNT is the taker's side, the stored
    amount is its absolute value::

        [[1498210375, 1704067201234, 0.0125, 42281],
         [1498210376, 1704067201567, -0.00340512, 42280.5]]

    Rows keep the exchange's order (ascending with ``sort=1``).
    """
    what = "bitfinex trades"
    ids, mts, amount, price = columns.rows_to_columns(rows, 4, what)
    signed = columns.float_column("amount", amount, what)
    if (signed == 0).any():
        raise errors.UnexpectedPayload(f"{what}: a trade with amount 0 has no side")
    return pl.DataFrame(
        [
            columns.ms_to_ns_column("ts", mts, what),
            columns.int_column("trade_id", ids, what).cast(pl.String),
            columns.float_column("price", price, what),
            signed.abs(),
            side_from_amount(signed),
        ]
    )


def parse_book(rows: Any, ts: int) -> pl.DataFrame:
    """``/v2/book/tBTCUSD/P0?len=25`` rows -> book frame stamped ``ts`` (ns).

    Docs: https://docs.bitfinex.com/reference/rest-public-book . Rows
    ``[PRICE, COUNT, AMOUNT]``; AMOUNT > 0 is a bid, < 0 an ask (its size is the
    absolute value). Bids come first, best first; the body carries no time, so the
    caller stamps the snapshot with the receive time::

        [[73210, 3, 0.5], [73209, 1, 1.2], [73211, 2, -0.4], [73212, 1, -2.0]]
    """
    what = "bitfinex book"
    price, _count, amount = columns.rows_to_columns(rows, 3, what)
    signed = columns.float_column("amount", amount, what)
    frame = pl.DataFrame([columns.float_column("price", price, what), signed])
    bids = frame.filter(pl.col("amount") > 0).sort("price", descending=True)
    asks = frame.filter(pl.col("amount") < 0).sort("price").with_columns(pl.col("amount").abs())
    return columns.book_frame(ts, bids, asks)
