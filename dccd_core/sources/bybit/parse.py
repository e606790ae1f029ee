"""Pure Bybit v5 parsers: response bodies in, domain-schema polars frames out.

Every v5 body is ``{"retCode": 0, "retMsg": "OK", "result": {...}, "time": ms}``; a
nonzero ``retCode`` arrives with HTTP 200, so :func:`check_payload` is the transport's
hook for it. Numbers are strings (``"42291.5"``), lists are newest first.

Inverse contracts (``BTC/USD:BTC``) count sizes in USD contracts: trades and book
amounts are divided by the price to give base-coin amounts, and kline ``turnover``
(already in BTC) is the base volume while ``volume`` (USD) is the quote volume.
Docs: https://bybit-exchange.github.io/docs/v5/error
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from dccd_core.domain import errors

from .. import columns

__all__ = [
    "book_sides",
    "candles_frame",
    "check_payload",
    "parse_book",
    "parse_candles",
    "parse_result",
    "parse_trades",
    "result_list",
    "trades_frame",
]

#: retCodes meaning "no such market" (10001 carries several param errors: see the message).
_UNKNOWN_SYMBOL_CODES = {170121, 110023}
#: Bybit ``side`` (WS ``S``) is the taker's, capitalised on REST and WS alike.
_SIDES = {"Buy": "buy", "Sell": "sell"}


def check_payload(data: Any) -> None:
    """Raise ``ExchangeError`` (``UnknownSymbol`` for a bad symbol) for a v5 error body.

    Sample error body (HTTP 200)::

        {"retCode": 10001, "retMsg": "Not supported symbols", "result": {}, "time": 1707}
    """
    if not isinstance(data, dict) or "retCode" not in data:
        raise errors.UnexpectedPayload(
            f"bybit: expected a v5 envelope with retCode, got {data!r:.200}"
        )
    try:
        code = int(data["retCode"])
    except (TypeError, ValueError):
        raise errors.UnexpectedPayload(f"bybit: unreadable retCode {data['retCode']!r}") from None
    if code == 0:
        return
    message = str(data.get("retMsg", ""))
    if code in _UNKNOWN_SYMBOL_CODES or (code == 10001 and "symbol" in message.lower()):
        raise errors.UnknownSymbol(
            f"bybit does not list this symbol ({code}: {message}); check the market with "
            "`dccd` symbols or use BASE/QUOTE for spot, BASE/QUOTE:SETTLE for perpetuals"
        )
    raise errors.ExchangeError(f"bybit rejected the request ({code}: {message})")


def result_list(data: Any, what: str) -> list[Any]:
    """The ``result.list`` rows of a successful body (``what`` names the endpoint)."""
    rows = parse_result(data, what).get("list")
    if not isinstance(rows, list):
        raise errors.UnexpectedPayload(f"{what}: expected a result list, got {rows!r:.200}")
    return rows


def parse_result(data: Any, what: str) -> Any:
    """The ``result`` object of a successful body.

    The HTTP client has run :func:`check_payload` on every response already; a body
    that is not a plain success (an error handed to the parser directly) goes through
    it here, so a parser never reads an error body as data.
    """
    if not isinstance(data, dict) or data.get("retCode") not in (0, "0"):
        check_payload(data)
    result = data.get("result")
    if not isinstance(result, dict):
        raise errors.UnexpectedPayload(
            f"bybit {what}: expected a result object, got {result!r:.200}"
        )
    return result


def parse_candles(data: Any, *, inverse: bool = False) -> pl.DataFrame:
    """``/v5/market/kline`` body to the ohlc schema, sorted oldest first.

    Rows are ``[startTime ms, open, high, low, close, volume, turnover]``, newest first;
    ``volume`` is in the base coin (contracts = USD for inverse), ``turnover`` in the
    quote (the base coin for inverse). Docs: https://bybit-exchange.github.io/docs/v5/market/kline

    Sample::

        {"retCode": 0, "retMsg": "OK", "result": {"symbol": "BTCUSDT", "category": "linear",
         "list": [["1704070800000", "42291.5", "42410.0", "42205.3", "42388.9",
                   "1203.118", "50893721.4425"]]}, "time": 1704074405123}
    """
    what = "bybit kline"
    rows = parse_result(data, what).get("list")
    cols = columns.rows_to_columns(rows if rows is not None else [], 7, what)
    return candles_frame(*cols, inverse=inverse, what=what)


def candles_frame(
    ts_ms: Sequence[Any],
    o: Sequence[Any],
    h: Sequence[Any],
    lo: Sequence[Any],
    c: Sequence[Any],
    vol: Sequence[Any],
    turnover: Sequence[Any],
    *,
    inverse: bool,
    what: str,
    closed: Sequence[bool] | None = None,
) -> pl.DataFrame:
    """Candle columns (REST rows and WS kline objects alike) to ohlc, oldest first.

    The one place where inverse contracts swap ``volume`` (USD) and ``turnover`` (BTC).
    ``closed`` (WS ``confirm`` flags) adds the stream's Boolean ``closed`` column.
    """
    volume, quote = columns.float_column("v", vol, what), columns.float_column("q", turnover, what)
    if inverse:
        volume, quote = quote, volume
    ts = columns.ms_to_ns_column("ts", ts_ms, what)
    frame = columns.ohlc_frame(ts, (o, h, lo, c), what, volume=volume, quote_volume=quote)
    if closed is not None:
        frame = frame.with_columns(pl.Series("closed", list(closed), dtype=pl.Boolean))
    return frame.sort("ts")


def trades_frame(
    ts_ms: Sequence[Any],
    ids: Sequence[Any],
    prices: Sequence[Any],
    sizes: Sequence[Any],
    sides: Sequence[Any],
    *,
    inverse: bool,
    what: str,
) -> pl.DataFrame:
    """Trade columns (REST and WS alike) to the trades schema, oldest first.

    The one place Bybit's ``Buy``/``Sell`` (the taker's side) becomes ``buy``/``sell``.
    """
    price = columns.float_column("price", prices, what)
    amount = columns.float_column("amount", sizes, what)
    if inverse:
        amount = amount / price
    frame = pl.DataFrame(
        {
            "ts": columns.ms_to_ns_column("ts", ts_ms, what),
            "trade_id": columns.text_column("trade_id", ids, what),
            "price": price,
            "amount": amount.alias("amount"),
            "side": columns.side_column(sides, _SIDES, what),
        }
    )
    return frame.sort("ts", maintain_order=True)


def parse_trades(data: Any, *, inverse: bool = False) -> pl.DataFrame:
    """``/v5/market/recent-trade`` body to the trades schema, oldest first.

    ``side`` is the taker's side. Spot ``execId`` is numeric text, derivatives send a
    UUID. Docs: https://bybit-exchange.github.io/docs/v5/market/recent-trade

    Sample::

        {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [
          {"execId": "3f6c2a0e-8b1d-5e47-9a02-6d1c4b7e9f15", "symbol": "BTCUSDT",
           "price": "42288.10", "size": "0.315", "side": "Buy", "time": "1704070812345",
           "isBlockTrade": false}]}, "time": 1704070812901}
    """
    what = "bybit recent-trade"
    rows = parse_result(data, what).get("list")
    if not isinstance(rows, list):
        raise errors.UnexpectedPayload(f"{what}: expected result.list, got {rows!r:.200}")
    rows = rows[::-1]  # newest first on the wire; reverse keeps same-ms trades in order
    cols = columns.object_columns(rows, ("time", "execId", "price", "size", "side"), what)
    return trades_frame(*cols, inverse=inverse, what=what)


def book_sides(
    bids: Any, asks: Any, *, depth: int | None, inverse: bool, what: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``[[price, size], ...]`` bid and ask lists (best first) to (price, amount) frames;
    inverse sizes (USD contracts) become base amounts."""
    out = []
    for levels in (bids, asks):
        frame = columns.levels_frame(levels, what, depth=depth)
        if inverse:
            frame = frame.with_columns(pl.col("amount") / pl.col("price"))
        out.append(frame)
    return out[0], out[1]


def parse_book(data: Any, depth: int | None = None, *, inverse: bool = False) -> pl.DataFrame:
    """``/v5/market/orderbook`` body to the book schema (level 0 = best).

    ``b`` bids best (highest) first, ``a`` asks best (lowest) first; ``ts`` is the
    matching engine's ms time. Spot bodies have no ``seq`` and list ``a`` first.
    Docs: https://bybit-exchange.github.io/docs/v5/market/orderbook

    Sample::

        {"retCode": 0, "retMsg": "OK", "result": {"s": "BTCUSDT",
         "b": [["42288.1", "95.212"]], "a": [["42288.2", "63.007"]],
         "ts": 1704070812345, "u": 518204, "seq": 611837452}, "time": 1704070812411}
    """
    what = "bybit orderbook"
    result = parse_result(data, what)
    try:
        bids, asks, ts_raw = result["b"], result["a"], result["ts"]
    except KeyError as exc:
        raise errors.UnexpectedPayload(f"{what}: no {exc} in result") from None
    ts = int(columns.ms_to_ns_column("ts", [ts_raw], what)[0])
    bid_levels, ask_levels = book_sides(bids, asks, depth=depth, inverse=inverse, what=what)
    return columns.book_frame(ts, bid_levels, ask_levels)
