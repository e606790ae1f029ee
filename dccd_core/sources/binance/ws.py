"""Binance streams: aggTrades, klines and the diff-depth book over combined streams.

API: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
(USD-M futures: https://developers.binance.com/docs/derivatives/usds-margined-futures/
websocket-market-streams). One connection carries every symbol:
``/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade``; each frame is wrapped as
``{"stream": "<name>", "data": {...}}``. Binance closes every connection after 24 h.

The book is Binance's "REST snapshot + diff stream" protocol: buffer ``depthUpdate``
events, GET ``/api/v3/depth?limit=1000`` (``lastUpdateId``), drop events with
``u <= lastUpdateId``, the first applied event has ``U <= lastUpdateId+1 <= u``, and each
next one starts at the previous ``u + 1`` (futures: ``pu`` equals the previous ``u``).

The aggTrade ``data`` object carries the same keys as a REST ``/api/v3/aggTrades`` row
(``a p q f l T m``), so both paths share the REST parser ``parse.parse_trades_page``
— one place maps the maker flag ``m`` to the taker side (``m=true``: the buyer was the
maker, so the taker *sold*) and drops re-sent aggregates (``f`` at or below the highest
``l`` before it). The highest ``l`` of each symbol is kept from batch to batch of one
subscription, so a replay in a later frame than its original is dropped too (its id
then shows as a skipped one, which the stream heals from REST, where it is dropped
again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import polars as pl

from dccd_core.domain import DataType, Span, Symbol, errors, ms_to_ns, now_ns

from .. import columns, ws
from .liquidations import parse_force_orders
from .parse import parse_trades_page
from .rest import build_book_request, on_host

__all__ = [
    "BINANCE_FUTURES_WS",
    "BINANCE_SPOT_WS",
    "BinanceWs",
    "parse_depth_snapshot",
    "parse_kline_records",
]

BINANCE_SPOT_WS = "wss://stream.binance.com:9443"
BINANCE_FUTURES_WS = "wss://fstream.binance.com"



def parse_kline_records(records: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """WS kline objects (the ``k`` of a kline event) to ohlc + ``closed``.

    Sample::

        {"t":1704067200000,"T":1704067259999,"s":"BTCUSDT","i":"1m","f":1,"L":5,
         "o":"42281.40","c":"42290.00","h":"42300.00","l":"42280.00","v":"12.5",
         "n":5,"x":true,"q":"528600.1","V":"6.1","Q":"258000.0","B":"0"}
    """
    try:
        frame = pl.DataFrame(
            {
                "ts": pl.Series([k["t"] for k in records], dtype=pl.Int64, strict=False)
                * 1_000_000,
                "open": pl.Series([k["o"] for k in records], dtype=pl.Float64, strict=False),
                "high": pl.Series([k["h"] for k in records], dtype=pl.Float64, strict=False),
                "low": pl.Series([k["l"] for k in records], dtype=pl.Float64, strict=False),
                "close": pl.Series([k["c"] for k in records], dtype=pl.Float64, strict=False),
                "volume": pl.Series([k["v"] for k in records], dtype=pl.Float64, strict=False),
                "quote_volume": pl.Series(
                    [k.get("q") for k in records], dtype=pl.Float64, strict=False
                ),
                "trades": pl.Series([k.get("n") for k in records], dtype=pl.Int64, strict=False),
                "closed": pl.Series([bool(k["x"]) for k in records], dtype=pl.Boolean),
            },
            schema=columns.WS_CANDLES_SCHEMA,
        )
    except (KeyError, TypeError) as exc:
        raise errors.UnexpectedPayload(
            f"binance kline: missing field {exc} in {records[:1]!r}"
        ) from None
    if frame.select(pl.exclude("quote_volume", "trades")).null_count().sum_horizontal().item():
        raise errors.UnexpectedPayload(f"binance kline: non-numeric value in {records[:1]!r}")
    return frame


def parse_depth_snapshot(payload: Any, symbol: Symbol) -> ws.WsBook:
    """REST ``/api/v3/depth`` (or ``/fapi/v1/depth``) to a book snapshot with ``last_seq``.

    Sample: ``{"lastUpdateId": 40127755, "bids": [["42117.52", "0.0123"]],
    "asks": [["42117.53", "0.405"]]}`` (futures add ``E``/``T`` ms).
    """
    if not isinstance(payload, dict) or "lastUpdateId" not in payload:
        raise errors.UnexpectedPayload(
            f"binance depth: expected lastUpdateId/bids/asks, got {payload!r:.200}"
        )
    ts_ms = payload.get("T") or payload.get("E")

    return ws.WsBook(
        symbol=symbol,
        ts=ms_to_ns(ts_ms) if ts_ms is not None else now_ns(),
        snapshot=True,
        bids=columns.float_levels(payload.get("bids", []), "binance depth"),
        asks=columns.float_levels(payload.get("asks", []), "binance depth"),
        last_seq=int(payload["lastUpdateId"]),
    )


class BinanceWs(ws.WsSource):
    """Binance's streaming hooks, mixed into ``BinanceSource`` next to ``BinanceRest``."""

    ws_idle_timeout_s: ClassVar[float] = 60.0
    #: Binance disconnects every connection at 24 h; the client rotates before.
    ws_max_session_s: ClassVar[float | None] = 24 * 3600.0
    book_protocol: ClassVar[ws.BookProtocol] = ws.BookProtocol(ws.BookSync.REST_SNAPSHOT)

    #: per native symbol, the highest trade id (``l``) and aggregate id (``a``) the
    #: aggTrade stream delivered
    _ws_trade_high: dict[str, tuple[int, int]]

    def _market_origin(self, sub: ws.WsSubscription) -> str:
        origin = self._ws_origin(BINANCE_SPOT_WS)
        perps = {s.is_perpetual for s in sub.symbols}
        if len(perps) > 1:
            raise errors.NoCapability(
                "binance: spot and perpetual symbols need separate streams; "
                "list them in separate stream datasets"
            )
        if perps == {True} and origin == BINANCE_SPOT_WS:
            origin = BINANCE_FUTURES_WS
        return origin

    def _stream_name(self, symbol: Symbol, sub: ws.WsSubscription) -> str:
        native = self.native_symbol(symbol).lower()
        if sub.data_type is DataType.TRADES:
            return f"{native}@aggTrade"
        if sub.data_type is DataType.OHLC:
            span: Span | None = sub.span
            if span is None:
                raise errors.NoCapability("binance klines need a span")
            return f"{native}@kline_{span.label}"
        if sub.data_type is DataType.LIQUIDATIONS:
            return f"{native}@forceOrder"
        return f"{native}@depth@100ms"

    def ws_url(self, sub: ws.WsSubscription) -> str:
        """``wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade/...``."""
        names = [self._stream_name(s, sub) for s in sub.symbols]
        self._subscribe(sub, lambda s: self.native_symbol(s).upper())
        self._ws_trade_high = {}
        return f"{self._market_origin(sub)}/stream?streams={'/'.join(names)}"

    def _symbol(self, native: object) -> Symbol:
        return self._ws_symbol(str(native).upper())

    def parse_ws_message(self, raw: str | bytes) -> list[ws.WsEvent]:
        """One combined-stream frame to events (see the module docstring)."""
        return self.parse_ws_messages([raw])

    def parse_ws_messages(self, raws: Sequence[str | bytes]) -> list[ws.WsEvent]:
        """A batch of frames; trades and klines are merged into one frame per symbol.

        Samples: ``{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade",...}}``,
        ``{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1704067200100,
        "s":"BTCUSDT","U":157,"u":160,"b":[["42283.5","0.5"]],"a":[["42284","0"]]}}``,
        a subscription ack ``{"result":null,"id":1}``, an error
        ``{"code":2,"msg":"Invalid request"}``.
        """
        trades: dict[str, list[dict[str, Any]]] = {}
        klines: dict[tuple[str, str], list[dict[str, Any]]] = {}
        liquidations: dict[str, list[dict[str, Any]]] = {}
        events: list[ws.WsEvent] = []
        for raw in raws:
            msg = ws.decode_frame(raw, "binance stream")
            data = msg.get("data") if isinstance(msg, dict) else None
            if not isinstance(data, dict):
                events.append(self._control(msg))
                continue
            kind = data.get("e")
            if kind == "aggTrade":
                trades.setdefault(data.get("s", ""), []).append(data)
            elif kind == "kline":
                k = data.get("k")
                if not isinstance(k, dict):
                    raise errors.UnexpectedPayload(f"binance kline: no k object in {data!r:.200}")
                klines.setdefault((data.get("s", ""), str(k.get("i"))), []).append(k)
            elif kind == "depthUpdate":
                events.append(self._depth(data))
            elif kind == "forceOrder":
                order = data.get("o")
                native = order.get("s", "") if isinstance(order, dict) else ""
                liquidations.setdefault(native, []).append(data)
            else:
                raise errors.UnexpectedPayload(
                    f"binance stream: unknown event {kind!r} in {msg!r:.200}"
                )
        highs = self.__dict__.setdefault("_ws_trade_high", {})
        for native, records in trades.items():
            symbol = self._symbol(native)
            high_l, high_a = highs.get(native, (None, None))
            parsed = parse_trades_page(
                records,
                after_trade_id=high_l,
                after_agg_id=high_a,
                origin=f"binance stream {symbol}",
            )
            if parsed.last_trade_id is not None and parsed.last_agg_id is not None:
                high_a = parsed.last_agg_id if high_a is None else max(high_a, parsed.last_agg_id)
                highs[native] = (parsed.last_trade_id, high_a)
            events.append(ws.WsTrades(symbol, parsed.rows))
        for (native, interval), records in klines.items():
            events.append(
                ws.WsCandles(
                    self._symbol(native), Span.parse(interval), parse_kline_records(records)
                )
            )
        for native, records in liquidations.items():
            symbol = self._symbol(native)
            rows = parse_force_orders(records, f"binance forceOrder {symbol}")
            events.append(ws.WsLiquidations(symbol, rows))
        return events

    def _control(self, msg: Any) -> ws.WsEvent:
        if isinstance(msg, dict):
            if "result" in msg and "id" in msg:
                return ws.WsIgnore("ack")
            inner = msg.get("error")
            error: dict[str, Any] = inner if isinstance(inner, dict) else msg
            if "code" in error and "msg" in error:
                raise errors.ExchangeError(
                    f"binance stream error {error['code']}: {error['msg']}; "
                    "check the stream names (symbols, spans)"
                )
        raise errors.UnexpectedPayload(f"binance stream: unknown frame {msg!r:.200}")

    def _depth(self, data: dict[str, Any]) -> ws.WsBook:
        try:
            return ws.WsBook(
                symbol=self._symbol(data["s"]),
                ts=ms_to_ns(data.get("T") or data["E"]),
                snapshot=False,
                bids=columns.float_levels(data["b"], "binance depthUpdate"),
                asks=columns.float_levels(data["a"], "binance depthUpdate"),
                first_seq=int(data["U"]),
                last_seq=int(data["u"]),
                prev_seq=int(data["pu"]) if "pu" in data else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.UnexpectedPayload(
                f"binance depthUpdate: bad field {exc} in {data!r:.200}"
            ) from None

    async def fetch_ws_book_snapshot(self, symbol: Symbol, depth: int) -> ws.WsBook:
        """GET ``/api/v3/depth?limit=1000`` (futures ``/fapi/v1/depth``) with lastUpdateId."""
        limit = next((n for n in (100, 500, 1000) if n >= depth), 1000)
        request = on_host(build_book_request(symbol, limit), self.endpoints.rest_url)
        payload = await self._get(request)
        return parse_depth_snapshot(payload, symbol)
