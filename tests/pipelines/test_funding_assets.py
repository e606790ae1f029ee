"""A week of funding materialized by Dagster on each of the four exchanges: store ==
truth, the funding checks pass on real-looking data and fail on a planted fault; a week
of mark and of index candles, and of open interest on Binance, Bybit and OKX (a skipped
day is a hole; BitMEX has no open-interest history and is refused); and the same week of
OKX funding and open interest through the real ``dagster asset materialize`` CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from polars.testing import assert_frame_equal

from dccd_core.catalog import Catalog
from dccd_core.domain import NS_PER_DAY, DatasetKey, to_ns
from dccd_core.storage import Store
from dccd_pipelines.assets import build_dataset_asset
from dccd_pipelines.catalog import parse_catalog
from dccd_pipelines.checks import audit_dataset, check_names
from dccd_pipelines.resources import dccd_resources
from tests.fakes.funding import FUNDING_FAKES, FundingHistory, funding_app
from tests.fakes.open_interest import OI_FAKES, OpenInterest, oi_app
from tests.fakes.prices import PRICE_FAKES, PriceBars, prices_app
from tests.fakes.server import serve_in_thread

EXCHANGES = ("binance", "bybit", "okx", "bitmex")
TODAY = datetime.now(UTC).date()
#: a week ending two days ago: every partition of it is settled
FIRST, LAST = TODAY - timedelta(days=9), TODAY - timedelta(days=3)
RANGE = {
    "dagster/asset_partition_range_start": FIRST.isoformat(),
    "dagster/asset_partition_range_end": LAST.isoformat(),
}
#: the week's [start, end) in ns
WEEK = (to_ns(FIRST.isoformat()), to_ns(LAST.isoformat()) + NS_PER_DAY)


def catalog_for(root: Path, exchange: str, origin: str, **more: object) -> Catalog:
    ds = {
        "exchange": exchange,
        "symbols": ["BTC/USDT:USDT"],
        "data_types": ["funding"],
        "start": (TODAY - timedelta(days=30)).isoformat(),
        "update": "0 * * * *",
        **more,
    }
    raw = {"store": {"root": str(root)}, "exchanges": {exchange: {"rest_url": origin}},
           "datasets": [ds]}  # fmt: skip
    return parse_catalog(raw, path=root / "catalog.yaml", env={}, today=TODAY)


def materialize_dataset(catalog: Catalog, **kwargs: Any) -> ExecuteInProcessResult:
    """The catalog's one dataset materialized by Dagster on a fresh ephemeral instance."""
    return materialize(
        [build_dataset_asset(catalog.datasets[0])],
        resources=dccd_resources(str(catalog.store_root)),
        instance=DagsterInstance.ephemeral(),
        **kwargs,
    )


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_a_week_of_funding_materializes_equal_to_the_truth(tmp_path: Path, exchange: str) -> None:
    cls, options = FUNDING_FAKES[exchange]
    fake = cls(FundingHistory.recent(40, **options))
    with serve_in_thread(lambda: funding_app(exchange, fake)) as origin:
        catalog = catalog_for(tmp_path, exchange, origin)
        spec = catalog.datasets[0]
        assert spec.key == DatasetKey.of(exchange, "BTC/USDT:USDT", "funding")
        result = materialize_dataset(catalog, tags=RANGE)
    assert result.success
    start, end = WEEK
    truth = fake.history.truth(start, end, marks=fake.marks, intervals=fake.intervals)
    stored = Store(tmp_path).read(spec.key, start, end)
    assert truth.height >= 21  # 3 a day at least
    assert_frame_equal(stored, truth, check_dtypes=False)
    mats = result.asset_materializations_for_node(f"fetch_{spec.key.job_name}")
    assert len(mats) == 7
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == set(check_names(spec.key))
    assert {"funding_interval_regular", "funding_rate_plausible", "no_holes"} <= set(checks)
    assert all(c.passed for c in checks.values()), checks
    files = sorted(p.name for p in (tmp_path / "funding").rglob("*.parquet"))
    assert files == sorted({f"{FIRST.year}.parquet", f"{LAST.year}.parquet"})


def test_the_funding_checks_catch_a_missing_event_and_a_wild_rate(tmp_path: Path) -> None:
    key = DatasetKey.of("bybit", "BTC/USDT:USDT", "funding")
    t0 = to_ns("2024-05-01")
    hour = NS_PER_DAY // 24
    ts = [t0 + i * 8 * hour for i in range(10)]
    del ts[4]  # a funding event the exchange never served: a 16 h gap
    rows = pl.DataFrame({"ts": ts, "rate": [0.0001] * 8 + [0.2], "mark_price": [None] * 9,
                         "interval_h": [None] * 9},
                        schema={"ts": pl.Int64, "rate": pl.Float64, "mark_price": pl.Float64,
                                "interval_h": pl.Int32})  # fmt: skip
    store = Store(tmp_path)
    store.write(key, rows)
    outcomes = audit_dataset(str(tmp_path), key, t0, t0 + 4 * NS_PER_DAY)
    assert outcomes["funding_interval_regular"].bad == 1
    assert outcomes["funding_interval_regular"].examples[0]["gap_h"] == 16
    assert outcomes["funding_rate_plausible"].bad == 1
    assert outcomes["no_duplicates"].passed and outcomes["sorted_in_period"].passed


@pytest.mark.parametrize(("exchange", "data_type"), [("bybit", "index"), ("okx", "mark")])
def test_a_week_of_price_candles_materializes(
    tmp_path: Path, exchange: str, data_type: str
) -> None:
    first_ms = to_ns((TODAY - timedelta(days=20)).isoformat()) // 1_000_000
    last_ms = to_ns(TODAY.isoformat()) // 1_000_000
    fake = PRICE_FAKES[exchange](PriceBars(first_ms, last_ms, 1), PriceBars(first_ms, last_ms, 2))
    with serve_in_thread(lambda: prices_app(exchange, fake)) as origin:
        catalog = catalog_for(tmp_path, exchange, origin, data_types=[data_type], spans=["1h"])
        spec = catalog.datasets[0]
        result = materialize_dataset(catalog, tags=RANGE)
    assert result.success
    start, end = WEEK
    bars = fake.mark if data_type == "mark" else fake.index
    assert_frame_equal(
        Store(tmp_path).read(spec.key, start, end), bars.truth("1h", start, end),
        check_dtypes=False,
    )  # fmt: skip
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert "ohlc_sanity" in checks  # null volumes pass it
    assert all(c.passed for c in checks.values()), checks  # missing bars were fetched: no hole


@pytest.mark.parametrize("exchange", sorted(OI_FAKES))
def test_a_week_of_open_interest_materializes_and_a_skipped_day_is_a_hole(
    tmp_path: Path, exchange: str
) -> None:
    last_ms = to_ns(TODAY.isoformat()) // 1_000_000
    fake = OI_FAKES[exchange](OpenInterest(last_ms - 25 * 86_400_000, last_ms))
    with serve_in_thread(lambda: oi_app(exchange, fake)) as origin:
        since = (TODAY - timedelta(days=20)).isoformat()
        catalog = catalog_for(
            tmp_path, exchange, origin, data_types=["open_interest"], spans=["1h"], start=since
        )
        spec = catalog.datasets[0]

        week = materialize_dataset(catalog, tags=RANGE)
        # two days further back, skipping the day between: the day never fetched
        older = (FIRST - timedelta(days=2)).isoformat()
        assert materialize_dataset(catalog, partition_key=older).success
    assert week.success
    start, end = WEEK
    truth = fake.data.truth("1h", start, end, value=fake.value)
    assert_frame_equal(Store(tmp_path).read(spec.key, start, end), truth, check_dtypes=False)
    assert all(c.passed for c in week.get_asset_check_evaluations())
    outcomes = audit_dataset(str(tmp_path), spec.key, to_ns(older), end)
    assert outcomes["no_holes"].bad == 1
    skipped = (FIRST - timedelta(days=1)).isoformat()
    assert outcomes["no_holes"].examples[0]["start"].startswith(skipped)


@pytest.mark.parametrize(
    ("exchange", "span", "days"),
    [("binance", "1h", 60), ("okx", "5m", 20)],  # Binance: 30 days; OKX: 1,440 samples
)
def test_a_short_history_window_does_not_age_the_catalog_out(
    tmp_path: Path, exchange: str, span: str, days: int
) -> None:
    last_ms = to_ns(TODAY.isoformat()) // 1_000_000
    fake = OI_FAKES[exchange](OpenInterest(last_ms - 70 * 86_400_000, last_ms))
    with serve_in_thread(lambda: oi_app(exchange, fake)) as origin:
        since = (TODAY - timedelta(days=days)).isoformat()  # older than the window
        catalog = catalog_for(
            tmp_path, exchange, origin, data_types=["open_interest"], spans=[span], start=since
        )
        result = materialize_dataset(catalog, partition_key=since, raise_on_error=False)
    assert not result.success  # the old partition is refused ...
    assert fake.requests == []  # ... before any request


def test_bitmex_open_interest_is_refused_by_the_catalog(tmp_path: Path) -> None:
    """BitMEX has no open-interest history endpoint: the catalog says so at load, so no
    asset is offered that could only fail."""
    from dccd_core.domain import ConfigError

    with pytest.raises(ConfigError, match="bitmex cannot serve open_interest; remove it"):
        catalog_for(tmp_path, "bitmex", "http://127.0.0.1:9", data_types=["open_interest"],
                    spans=["1h"])  # fmt: skip


@pytest.mark.slow
def test_the_dagster_cli_materializes_a_week_of_okx_funding_and_open_interest(
    tmp_path: Path,
) -> None:
    """The acceptance through the real ``dagster asset materialize`` (a subprocess), on
    OKX, the exchange with both series paged newest first: one partition range run of the
    two assets, the store equal to the truth."""
    import os
    import subprocess
    import sys

    from tests.fakes.server import routes_app

    last_ms = to_ns(TODAY.isoformat()) // 1_000_000
    history = FundingHistory.recent(30)
    funding = FUNDING_FAKES["okx"][0](history)
    oi = OI_FAKES["okx"](OpenInterest(last_ms - 25 * 86_400_000, last_ms))
    catalog = tmp_path / "dccd.yaml"
    catalog.write_text(
        "datasets:\n  - exchange: okx\n    symbols: [BTC/USDT:USDT]\n"
        "    data_types: [funding, open_interest]\n    spans: [1h]\n"
        f"    start: {(TODAY - timedelta(days=20)).isoformat()}\n"
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    root = Path(__file__).parents[2]
    (home / "dagster.yaml").write_text((root / "dagster.yaml").read_text())
    with serve_in_thread(lambda: routes_app(funding, app=oi_app("okx", oi))) as origin:
        env = {**os.environ, "DCCD_CONFIG": str(catalog), "DCCD_OKX_REST_URL": origin,
               "DCCD_DATA_PATH": str(tmp_path / "lake"), "DAGSTER_HOME": str(home),
               "PYTHONPATH": str(root)}  # fmt: skip
        done = subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
             "dccd_pipelines.definitions", "--select",
             "okx/funding/btc_usdt_usdt,okx/open_interest/btc_usdt_usdt_1h",
             "--partition-range", f"{FIRST.isoformat()}...{LAST.isoformat()}"],
            cwd=root, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    start, end = WEEK
    store = Store(tmp_path / "lake")
    funding_key = DatasetKey.of("okx", "BTC/USDT:USDT", "funding")
    oi_key = DatasetKey.of("okx", "BTC/USDT:USDT", "open_interest", "1h")
    funding_truth = history.truth(start, end, marks=funding.marks, intervals=funding.intervals)
    assert funding_truth.height > 20
    assert_frame_equal(store.read(funding_key, start, end), funding_truth, check_dtypes=False)
    oi_truth = oi.data.truth("1h", start, end, value=oi.value)
    assert oi_truth.height > 150
    assert_frame_equal(store.read(oi_key, start, end), oi_truth, check_dtypes=False)
