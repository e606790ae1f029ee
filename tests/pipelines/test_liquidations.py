"""Liquidations in the catalog (stream only, perpetuals only) and in the stream checks:
a reconnect gap shows in the Dagster ``no_holes`` check, never green as complete."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dccd_core.domain import NO_REST_HISTORY, ConfigError, DatasetKey, iso_date, now_ns
from dccd_core.storage import Store
from dccd_pipelines.catalog import parse_catalog
from dccd_pipelines.checks import stream_check_evaluations
from tests.fakes.kit import stream_on
from tests.fakes.liquidations_ws import LiquidationsFake

TODAY = date(2024, 6, 1)
PERP = "BTC/USDT:USDT"
KEY = DatasetKey.of("binance", PERP, "liquidations")


def _dataset(**fields: Any) -> dict[str, Any]:
    return {"datasets": [{"exchange": "binance", "start": "2024-01-01", **fields}]}


def test_streamed_liquidations_are_a_dataset() -> None:
    raw = _dataset(symbols=[PERP], data_types=["liquidations"], stream=["liquidations"],
                   update="*/15 * * * *")  # fmt: skip
    (spec,) = parse_catalog(raw, env={}, today=TODAY).datasets
    assert spec.key == KEY and spec.stream and spec.update_cron is None


def test_stream_entry_alone_adds_the_dataset() -> None:
    raw = _dataset(symbols=[PERP], data_types=["funding"], stream=["liquidations"])
    keys = {s.key for s in parse_catalog(raw, env={}, today=TODAY).datasets}
    assert KEY in keys and len(keys) == 2


def test_liquidations_as_a_backfill_refused() -> None:
    raw = _dataset(symbols=[PERP], data_types=["liquidations"])
    with pytest.raises(ConfigError, match=NO_REST_HISTORY) as info:
        parse_catalog(raw, env={}, today=TODAY)
    assert "datasets[0].data_types[0]" in str(info.value)


def test_spot_symbol_refused() -> None:
    raw = _dataset(symbols=["BTC/USDT"], data_types=["trades"], stream=["liquidations"])
    with pytest.raises(ConfigError, match=r"liquidations needs a perpetual symbol like "
                       r"BTC/USDT:USDT, not the spot symbol BTC/USDT"):  # fmt: skip
        parse_catalog(raw, env={}, today=TODAY)


def test_exchange_without_the_stream_refused() -> None:
    raw = _dataset(exchange="kraken", symbols=["BTC/USD:USD"], data_types=["ohlc"],
                   spans=["1h"], stream=["liquidations"])  # fmt: skip
    with pytest.raises(ConfigError, match="kraken has no live liquidations stream"):
        parse_catalog(raw, env={}, today=TODAY)


async def _holes(tmp_path: Path, drop_every: int) -> tuple[int, int]:
    fake = LiquidationsFake(drop_every=drop_every)
    store = Store(tmp_path)
    final = await stream_on(fake, "binance", [PERP], "liquidations", store=store,
                            flush_interval_s=0.2, max_runtime_s=2.0)  # fmt: skip
    (check,) = [
        e
        for e in stream_check_evaluations(str(tmp_path), KEY, iso_date(now_ns()))
        if e.check_name == "no_holes"
    ]
    return final.unhealed_gaps, int(check.metadata["offending"].value) if not check.passed else 0


async def test_reconnect_gap_fails_the_stream_check(tmp_path: Path) -> None:
    unhealed, holes = await _holes(tmp_path / "drops", drop_every=60)
    assert unhealed >= 2 and holes >= unhealed  # each gap a hole (and the day before the start)
    unhealed, holes = await _holes(tmp_path / "steady", drop_every=0)
    assert unhealed == 0 and holes <= 1  # at most the day before the stream started
