"""dccd 3.8.1 driven against the fake Binance: one scenario per process.

Executed with the peer venv's interpreter (``bench/.venv-v3/bin/python``), never the
project's: it imports only dccd 3.8.1 and its dependencies. Usage:

    bench/.venv-v3/bin/python bench/peers/v3_runner.py '<json spec>'

prints one JSON line: ``{"wall_s", "rows", "peak_rss_mb", "cpu_s", ...}`` or
``{"error": "..."}``. The parent (``bench/run_all.py``) counts the requests on the
fake's ``/__stats`` and checks the stored rows against the fake's truth by reading
the Parquet files this process leaves under ``spec["root"]``.

How v3 is pointed at the fake (its public API has no base-URL setting):

* ``dccd.sources.binance._BASE_REST`` / ``_BASE_FAPI`` are module constants read at
  request time: they are replaced by the fake's origin before the first request;
* v3's backfill has no end parameter (it runs to ``ns_now()``): ``ns_now`` as seen by
  ``dccd.application.operations`` is replaced by ``end_ns - 1`` so the window is
  ``[start, end)`` like v4's (v3 treats the end as inclusive);
* v3's proactive limiter (10 req/s for Binance) is removed from the adapter's HTTP
  client, as v4's limiter is opened in the v4 runs: the fake has no weight limit.

Scenarios (``spec["scenario"]``):

* ``backfill``: ``operations.backfill(JobSpec(...), registry=, store=ParquetStore)``
  for ``kind`` "candles" (1m) or "trades", over ``[start_ns, end_ns)``.
  ``hourly=True`` drives v3 one hour window at a time (see ``_hour_windows``).
* ``store_write_trades``: ``ParquetStore.save`` of ``n`` trades over ``days`` days in
  batches of 10,000 records (v3's backfill flush size); only ``save`` is timed.
* ``store_read_day``: ``ParquetStore.load`` of one day of 1m candles from three years.
* ``store_append``: ``ParquetStore.save`` of one new 1m candle into three years.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# run as a script by the peer venv: the shared stdlib-only helpers are one folder up
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import peak_rss_mb

HOUR_NS = 3_600 * 10**9
DAY_NS = 86_400 * 10**9
MINUTE_NS = 60 * 10**9
START_3Y = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _point_at(origin: str) -> Any:
    """Patch v3's Binance constants to the fake; return a registry without a limiter."""
    import dccd.sources.binance as binance
    from dccd.application.service_factory import build_registry

    binance._BASE_REST = f"{origin}/api/v3"  # type: ignore[attr-defined]
    binance._BASE_FAPI = f"{origin}/fapi/v1"  # type: ignore[attr-defined]
    registry = build_registry()
    adapter = registry.get("binance")
    adapter._http._limiter = None  # type: ignore[attr-defined]
    return registry


def _job(kind: str, start_ns: int) -> Any:
    from dccd.application.jobs import JobParams, JobSpec, JobTarget, Trigger
    from dccd.domain.symbol import Symbol
    from dccd.domain.types import DataType

    target = JobTarget(
        exchange="binance",
        symbol=Symbol(base="BTC", quote="USDT"),
        data_type=DataType.OHLC if kind == "candles" else DataType.TRADES,
        span=60 if kind == "candles" else None,
    )
    return JobSpec(
        id=JobSpec.make_id("backfill", target),
        operation="backfill",
        target=target,
        trigger=Trigger(kind="manual"),
        params=JobParams(start=str(start_ns)),
    )


def _hour_windows(start_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut at whole hours.

    v3's first aggTrades request carries ``startTime`` and ``endTime`` = the whole
    window, and Binance refuses a window of 1 h or more (-1127); a v3 user can only
    backfill trades one hour at a time. Each window ends 1 ns before the next hour, so
    ``endTime - startTime`` is 3,599,999 ms.
    """
    out = []
    a = start_ns
    while a < end_ns:
        b = min(end_ns, (a // HOUR_NS + 1) * HOUR_NS)
        out.append((a, b))
        a = b
    return out


def _backfill(spec: dict[str, Any]) -> dict[str, Any]:
    import dccd.application.operations as operations
    from dccd.storage.parquet import ParquetStore

    registry = _point_at(spec["origin"])
    store = ParquetStore(spec["root"])
    start_ns, end_ns = int(spec["start_ns"]), int(spec["end_ns"])
    windows = _hour_windows(start_ns, end_ns) if spec.get("hourly") else [(start_ns, end_ns)]
    rows = 0
    errors: list[str] = []
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    for a, b in windows:
        operations.ns_now = lambda b=b: b - 1  # type: ignore[attr-defined, misc]
        result = asyncio.run(operations.backfill(_job(spec["kind"], a), registry=registry,
                                                 store=store))
        rows += int(result.get("rows_written", 0))
        if "error" in result:
            errors.append(str(result["error"]))
            break
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "wall_s": round(wall, 3),
        "rows_written": rows,
        "cpu_s": round(_cpu_s() - cpu0, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "backfill_calls": len(windows),
    }
    if errors:
        out["error"] = errors[0][:300]
    return out


def _trades(n: int, days: int, first: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(7)
    ts = START_3Y + np.sort(rng.integers(0, days * DAY_NS, n)).astype(np.int64)
    return {
        "ts": ts,
        "tid": np.arange(first, first + n),
        "price": np.round(42_000 + rng.normal(0, 50, n).cumsum() / 100, 2),
        "amount": np.round(rng.exponential(0.05, n), 5),
        "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
    }


def _store_write_trades(spec: dict[str, Any]) -> dict[str, Any]:
    """v3's own write path: records in, ``save`` per 10k-record batch (as its backfill)."""
    from dccd.domain.dataset import DatasetId, Provenance
    from dccd.domain.records import Trade
    from dccd.domain.symbol import Symbol
    from dccd.domain.types import DataType
    from dccd.storage.parquet import ParquetStore

    n, days = int(spec["n"]), int(spec["days"])
    data = _trades(n, days, 3_000_000_000)
    ds = DatasetId(exchange="binance", symbol=Symbol(base="BTC", quote="USDT"),
                   data_type=DataType.TRADES)
    store = ParquetStore(spec["root"])
    prov = Provenance(source="bench")
    saving = 0.0
    cpu = 0.0
    for i in range(0, n, 10_000):
        sl = slice(i, min(n, i + 10_000))
        batch = [
            Trade(ts=int(t), price=float(p), amount=float(a), side=str(s), tid=str(k))
            for t, p, a, s, k in zip(data["ts"][sl], data["price"][sl], data["amount"][sl],
                                     data["side"][sl], data["tid"][sl], strict=True)
        ]
        c0 = _cpu_s()
        t0 = time.perf_counter()
        store.save(ds, batch, prov)
        saving += time.perf_counter() - t0
        cpu += _cpu_s() - c0
    stored = store.load(ds).height
    return {"wall_s": round(saving, 3), "rows_written": n, "rows": stored,
            "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
            "files": sum(1 for _ in store.directory(ds).glob("*.parquet"))}


def _three_years(root: str) -> tuple[Any, Any]:
    """Three years of 1m candles in v3's layout (one file per year), written directly in
    v3's schema by its own ``_write_parquet`` (building them through ``save`` in 10k
    batches would rewrite the year file ~50 times: minutes of set-up, not measured)."""
    import numpy as np
    import polars as pl
    from dccd.domain.dataset import DatasetId, Provenance
    from dccd.domain.symbol import Symbol
    from dccd.domain.types import DataType
    from dccd.storage.parquet import ParquetStore

    store = ParquetStore(root)
    ds = DatasetId(exchange="binance", symbol=Symbol(base="BTC", quote="USDT"),
                   data_type=DataType.OHLC, span=60)
    minutes = 3 * 365 * 1_440
    rng = np.random.default_rng(1)
    close = 42_000 + rng.normal(0, 10, minutes).cumsum()
    frame = pl.DataFrame({
        "TS": START_3Y + np.arange(minutes, dtype=np.int64) * MINUTE_NS,
        "open": close, "high": close + 5, "low": close - 5, "close": close,
        "volume": rng.exponential(3, minutes),
        "quote_volume": rng.exponential(3, minutes) * 42_000,
        "trades": rng.integers(1, 500, minutes),
    }).with_columns(pl.from_epoch("TS", time_unit="ns").dt.year().alias("_y"))
    for (year,), part in frame.group_by("_y"):
        store._write_parquet(store._file_path(ds, str(year)), part.drop("_y"),
                             Provenance(source="bench"))
    return store, ds


def _store_read_day(spec: dict[str, Any]) -> dict[str, Any]:
    store, ds = _three_years(spec["root"])
    day = START_3Y + 400 * DAY_NS
    timings = []
    for i in range(20):
        begin = day + (i % 5) * DAY_NS
        t0 = time.perf_counter()
        frame = store.load(ds, begin, begin + DAY_NS - 1)  # v3's end is inclusive
        timings.append(time.perf_counter() - t0)
        if frame.height != 1_440:
            raise AssertionError(f"read {frame.height} rows, expected 1440")
    median = statistics.median(timings)
    return {"wall_s": round(median, 5), "rows": 1_440, "first_read_s": round(timings[0], 5),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def _store_append(spec: dict[str, Any]) -> dict[str, Any]:
    from dccd.domain.records import OHLCBar

    store, ds = _three_years(spec["root"])
    last = store.last_timestamp(ds)
    timings = []
    for i in range(1, 21):
        bar = OHLCBar(ts=last + i * MINUTE_NS, open=1.0, high=2.0, low=0.5, close=1.5,
                      volume=1.0, quote_volume=1.0, trades=1)
        t0 = time.perf_counter()
        store.save(ds, [bar])
        timings.append(time.perf_counter() - t0)
    median = statistics.median(timings)
    return {"wall_s": round(median, 5), "rows": 1, "max_wall_s": round(max(timings), 5),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


SCENARIOS = {
    "backfill": _backfill,
    "store_write_trades": _store_write_trades,
    "store_read_day": _store_read_day,
    "store_append": _store_append,
}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    try:
        out = SCENARIOS[spec["scenario"]](spec)
    except Exception as exc:  # reported in the table, never a hang
        out = {"error": f"{type(exc).__name__}: {exc}"[:300],
               "peak_rss_mb": round(peak_rss_mb(), 1)}
    import dccd

    out["dccd_version"] = getattr(dccd, "__version__", "?")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
