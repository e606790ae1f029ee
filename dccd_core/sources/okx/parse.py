"""Pure OKX v5 parsers: response bodies in, domain-schema polars frames out.

Every v5 body is ``{"code": "0", "msg": "", "data": [...]}``; an error arrives as a
nonzero ``code`` (often with HTTP 200), so :func:`check_payload` is the transport's
hook for it. Numbers are strings, lists are newest first, times are ms strings.
Swap sizes are contracts: the parsers take a :class:`~.symbols.Contract` to turn them
into base amounts (``None`` for spot, whose sizes already are).
Docs: https://www.okx.com/docs-v5/en/#error-code
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dccd_core.domain import errors

from .. import columns
from .symbols import Contract

__all__ = [
    "book_sides",
    "candles_frame",
    "check_payload",
    "parse_book",
    "parse_candles",
    "parse_data",
    "parse_trades",
    "trades_frame",
]

#: 51001: "Instrument ID does not exist"; 51000 on instId is a malformed id.
_UNKNOWN_SYMBOL_CODES = {"51001", "51014"}
#: OKX ``side`` is the taker's, lowercase on REST and WS alike.
_SIDES = {"buy": "buy", "sell": "sell"}


def check_payload(data: Any) -> None:
    """Raise ``ExchangeError`` (``UnknownSymbol`` for an unknown instrument) for an error body.

    Sample error body::

        {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
    """
    if not isinstance(data, dict) or "code" not in data:
        raise errors.UnexpectedPayload(f"okx: expected a v5 envelope with code, got {data!r:.200}")
    code = str(data["code"])
    if code == "0":
        return
    message = str(data.get("msg", ""))
    if code in _UNKNOWN_SYMBOL_CODES:
        raise errors.UnknownSymbol(
            f"okx does not list this instrument ({code}: {message}); use BASE/QUOTE for spot "
            "or BASE/QUOTE:SETTLE for perpetual swaps"
        )
    raise errors.ExchangeError(f"okx rejected the request ({code}: {message})")


def parse_data(data: Any, what: str) -> list[Any]:
    """The ``data`` list of a successful body.

    The HTTP client has run :func:`check_payload` on every response already; a body
    that is not a plain success (an error handed to the parser directly) goes through
    it here, so a parser never reads an error body as data.
    """
    if not isinstance(data, dict) or data.get("code") not in (0, "0"):
        check_payload(data)
    rows = data.get("data")
    if not isinstance(rows, list):
        raise errors.UnexpectedPayload(f"okx {what}: expected a data list, got {rows!r:.200}")
    return rows


def candles_frame(rows: list[Any], *, swap: bool, what: str) -> pl.DataFrame:
    """Candle rows (REST and WS share the layout) to ohlc + ``closed``, oldest first.

    ``vol`` is base for spot and contracts for swaps, where ``volCcy`` is the base volume;
    ``volCcyQuote`` is the quote volume. ``confirm`` "1" = closed bar, "0" = still open.
    """
    ts, o, h, lo, c, vol, vol_ccy, vol_quote, confirm = columns.rows_to_columns(rows, 9, what)
    confirm_text = columns.text_column("confirm", confirm, what)
    if not confirm_text.is_in(["0", "1"]).all():
        raise errors.UnexpectedPayload(
            f"{what}: confirm values other than 0/1: {confirm_text.unique()}"
        )
    frame = columns.ohlc_frame(
        columns.ms_to_ns_column("ts", ts, what),
        (o, h, lo, c),
        what,
        volume=columns.float_column("volume", vol_ccy if swap else vol, what),
        quote_volume=columns.float_column("quote_volume", vol_quote, what),
    )
    return frame.with_columns(closed=confirm_text == "1").sort("ts")


def parse_candles(data: Any, *, swap: bool = False) -> pl.DataFrame:
    """``/api/v5/market/history-candles`` body to the ohlc schema: CLOSED bars only.

    An open bar (``confirm`` "0") is dropped: its values still move, and the lake would
    keep the snapshot as if it were final. ``swap``: volume from ``volCcy`` (base), not
    ``vol`` (contracts). Rows are ``[ts, o, h, l, c, vol, volCcy,
    volCcyQuote, confirm]`` (start-of-bar ms), newest first.
    Docs: https://www.okx.com/docs-v5/en/#public-data-rest-api-get-candlesticks-history

    Sample::

        {"code": "0", "msg": "", "data": [["1704070800000", "42112.4", "42395.1",
          "42058.7", "42301.2", "812.40117502", "34290551.301442718",
          "34290551.301442718", "1"]]}
    """
    what = "okx history-candles"
    frame = candles_frame(parse_data(data, what), swap=swap, what=what)
    return frame.filter(pl.col("closed")).drop("closed")


def trades_frame(rows: list[Any], *, contract: Contract | None, what: str) -> pl.DataFrame:
    """Trade objects (REST and WS share the keys) to the trades schema, oldest first.

    The one place OKX's ``side`` (the taker's) is normalised, for REST and WS alike.
    """
    rows = rows[::-1]  # newest first on the wire
    ts, ids, px, sz, side = columns.object_columns(
        rows, ("ts", "tradeId", "px", "sz", "side"), what
    )
    price = columns.float_column("price", px, what)
    amount = columns.float_column("amount", sz, what)
    if contract is not None:
        amount = contract.base_amount(amount, price)
    frame = pl.DataFrame(
        {
            "ts": columns.ms_to_ns_column("ts", ts, what),
            "trade_id": columns.text_column("trade_id", ids, what),
            "price": price,
            "amount": amount.alias("amount"),
            "side": columns.side_column(side, _SIDES, what),
        }
    )
    return frame.sort("ts", maintain_order=True)


def parse_trades(data: Any, *, contract: Contract | None = None) -> pl.DataFrame:
    """``/api/v5/market/history-trades`` (or ``/trades``) body to the trades schema.

    ``side`` is the taker's side; ``tradeId`` grows with time per instrument.
    Docs: https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-trades-history

    Sample::

        {"code": "0", "msg": "", "data": [{"instId": "BTC-USDT", "side": "sell",
          "sz": "0.0012345", "px": "42301.2", "tradeId": "468102235",
          "ts": "1704070812345"}]}
    """
    what = "okx history-trades"
    return trades_frame(parse_data(data, what), contract=contract, what=what)


def book_sides(
    bids: Any, asks: Any, *, depth: int | None, contract: Contract | None, what: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``[[px, sz, "0", numOrders], ...]`` bids and asks (best first) to (price, amount)
    frames; swap sizes become base amounts."""
    out = []
    for levels in (bids, asks):
        frame = columns.levels_frame(levels, what, depth=depth)
        if contract is not None:
            frame = frame.with_columns(
                contract.base_amount(pl.col("amount"), pl.col("price")).alias("amount")
            )
        out.append(frame)
    return out[0], out[1]


def parse_book(
    data: Any, depth: int | None = None, *, contract: Contract | None = None
) -> pl.DataFrame:
    """``/api/v5/market/books`` body to the book schema (level 0 = best).

    Levels are ``[price, size, "0" (deprecated), number of orders]``; swap sizes are
    contracts. Docs: https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-order-book

    Sample::

        {"code": "0", "msg": "", "data": [{"asks": [["42301.3", "12410", "0", "3"]],
          "bids": [["42301.2", "9875", "0", "2"]], "ts": "1704070812345"}]}
    """
    what = "okx books"
    rows = parse_data(data, what)
    if len(rows) != 1 or not isinstance(rows[0], dict):
        raise errors.UnexpectedPayload(f"{what}: expected one book object, got {rows!r:.200}")
    book = rows[0]
    try:
        bids, asks, ts_raw = book["bids"], book["asks"], book["ts"]
    except KeyError as exc:
        raise errors.UnexpectedPayload(f"{what}: no {exc} in the book") from None
    ts = int(columns.ms_to_ns_column("ts", [ts_raw], what)[0])
    bid_levels, ask_levels = book_sides(bids, asks, depth=depth, contract=contract, what=what)
    return columns.book_frame(ts, bid_levels, ask_levels)
