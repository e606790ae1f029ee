"""What a backfill stored, compared with the fake Binance's truth (v4 and v3 alike).

Why one checker for both versions: a faster run that loses rows is not faster, and a
side-by-side table is only fair if both sides are judged by the same rule. The
stored frame is read back from the lake the run left behind (v4: ``Store.read``; v3:
its Parquet files, columns ``TS``/``tid`` renamed to ``ts``/``trade_id``) and
compared with ``FakeBinance.truth_candles`` / ``truth_trades`` on the natural key
(``ts`` for candles, ``trade_id`` for trades) and on every value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from bench.fake_server import LISTING
from dccd_core.domain import DatasetKey, to_ns
from tests.fakes.binance import FakeBinance

__all__ = ["check_frame", "read_v3", "read_v4", "trades_window", "truth"]

_VALUES = {
    "candles": ["open", "high", "low", "close", "volume", "quote_volume", "trades"],
    "trades": ["ts", "price", "amount", "side"],
}


def _fake() -> FakeBinance:
    return FakeBinance.default(listing_ms=to_ns(LISTING) // 1_000_000)


def trades_window(start: str, n_trades: int) -> tuple[int, int]:
    """``[start, end)`` in ns holding exactly ``n_trades`` trades of the fake's BTCUSDT."""
    data = _fake().market()
    start_ns = to_ns(start)
    k0 = data.first_k_at(start_ns // 1_000_000)
    return start_ns, data.trade_ms_scalar(k0 + n_trades) * 1_000_000


def truth(kind: str, start_ns: int, end_ns: int, fake: FakeBinance | None = None
          ) -> pl.DataFrame:
    """The rows the fake (default: the shared fake process's) holds in ``[start_ns, end_ns)``."""
    fake = fake if fake is not None else _fake()
    if kind == "candles":
        return fake.truth_candles(start_ns, end_ns, "1m")
    return fake.truth_trades(start_ns, end_ns)


def read_v4(root: str, kind: str) -> pl.DataFrame:
    """Everything a v4 run stored for the dataset (not only the window: extras count)."""
    from dccd_core.storage import Store

    key = (DatasetKey.of("binance", "BTC/USDT", "ohlc", "1m") if kind == "candles"
           else DatasetKey.of("binance", "BTC/USDT", "trades"))
    return Store(root).read(key)


def read_v3(root: str, kind: str) -> pl.DataFrame:
    """Everything a dccd 3.8.1 run stored, in v4's column names."""
    sub = "ohlc/BTC-USDT/1m" if kind == "candles" else "trades/BTC-USDT"
    files = sorted((Path(root) / "binance" / sub).glob("*.parquet"))
    if not files:
        return pl.DataFrame()
    frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    return frame.rename({"TS": "ts", **({"tid": "trade_id"} if "tid" in frame.columns else {})})


def check_frame(kind: str, got: pl.DataFrame, start_ns: int, end_ns: int,
                fake: FakeBinance | None = None) -> dict[str, Any]:
    """Counts of stored / expected / missing / extra / duplicated / differing rows
    (``fake``: another fake than the shared process's, e.g. ``bench_archives``')."""
    want = truth(kind, start_ns, end_ns, fake)
    key = "ts" if kind == "candles" else "trade_id"
    out: dict[str, Any] = {"stored": got.height, "expected": want.height}
    if got.height == 0:
        out.update(missing=want.height, extra=0, duplicated=0, differing=0, exact=False)
        return out
    got = got.with_columns(pl.col(key).cast(want.schema[key]))
    dup = got.height - got.get_column(key).n_unique()
    missing = want.join(got, on=key, how="anti").height
    extra = got.join(want, on=key, how="anti").height
    cols = [c for c in _VALUES[kind] if c != key and c in got.columns]
    joined = want.select(key, *cols).join(
        got.unique(key, keep="last").select(key, *[pl.col(c).cast(want.schema[c]) for c in cols]),
        on=key, how="inner", suffix="_got",
    )
    differing = joined.filter(
        pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_got")) for c in cols])
    ).height if cols else 0
    out.update(missing=missing, extra=extra, duplicated=dup, differing=differing)
    out["exact"] = not (missing or extra or dup or differing) and got.height == want.height
    return out
