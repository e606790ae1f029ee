"""The generic ccxt source's funding and open-interest history: declared only where the
ccxt exchange has the method, and an actual ccxt exchange class (Binance USD-M) driven
page by page against the loopback fakes of ``/fapi/v1/fundingRate`` and
``/futures/data/openInterestHist``: the store equals the truth across page boundaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

from dccd_core.domain import NS_PER_MS, DatasetKey, DataType, NoCapability, Span, Symbol
from dccd_core.operations.backfill import backfill
from dccd_core.sources.base import Endpoints
from dccd_core.sources.ccxt_derivatives import DERIVATIVES_PAGE_LIMIT, open_interest_timeframes
from dccd_core.sources.ccxt_exchange import derive_capability, span_timeframes
from dccd_core.sources.ccxt_source import CcxtSource
from dccd_core.storage import Store
from tests.fakes.funding import FUNDING_FAKES, FundingHistory, funding_app
from tests.fakes.kit import recent_ms
from tests.fakes.open_interest import OI_FAKES, OpenInterest, oi_app
from tests.fakes.server import serve

PERP = "BTC/USDT:USDT"
#: ccxt's Binance loads its USD-M markets only (the fakes list no others)
LINEAR = {"fetchMarkets": {"types": ["linear"]}}


class Stub:
    """A ccxt exchange's declarations, nothing else."""

    timeframes = {"5m": "5m", "1h": "1h", "1w": "1w"}
    features: dict[str, Any] = {}
    rateLimit = 100
    urls: dict[str, Any] = {}

    def __init__(self, has: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        self.has = has
        self.options = options or {}


def test_declared_only_where_ccxt_has_the_method() -> None:
    none = derive_capability(Stub({"fetchFundingRateHistory": "emulated"}), "stubex")
    assert none.feature(DataType.FUNDING) is None
    assert none.feature(DataType.OPEN_INTEREST) is None
    both = derive_capability(
        Stub({"fetchFundingRateHistory": True, "fetchOpenInterestHistory": True}), "stubex"
    )
    funding = both.require(DataType.FUNDING)
    assert funding.page_limit == DERIVATIVES_PAGE_LIMIT  # ccxt declares none: a safe page
    oi = both.require(DataType.OPEN_INTEREST, span=Span.parse("1h"))
    assert [s.label for s in oi.spans] == ["5m", "1h"]  # 1w is no common OI period
    with pytest.raises(NoCapability, match="no 1w"):
        both.require(DataType.OPEN_INTEREST, span=Span.parse("1w"))


def test_open_interest_periods_from_the_exchange_options() -> None:
    """OKX keeps its own list (``5m 1h 8h 1d``, with ``5M``/``1H`` spellings dropped)."""
    listed = {"5m": "5m", "1h": "1H", "8h": "8H", "1d": "1D", "5M": "5m", "1H": "1H"}
    stub = Stub({}, {"fetchOpenInterestHistory": {"timeframes": listed}})
    periods = open_interest_timeframes(stub, span_timeframes(stub.timeframes))
    assert [s.label for s in periods] == ["5m", "1h", "8h", "1d"]


async def test_spot_and_undeclared_are_refused_before_a_request() -> None:
    source = CcxtSource("bitstamp", Endpoints("http://127.0.0.1:9"))  # nothing listens
    try:
        with pytest.raises(NoCapability, match="bitstamp cannot serve open_interest"):
            await source.fetch_open_interest(Symbol.parse(PERP), Span.parse("1h"), 0, 10**18)
    finally:
        await source.aclose()
    source = CcxtSource("binance", Endpoints("http://127.0.0.1:9"), options=LINEAR)
    try:
        with pytest.raises(NoCapability, match="funding needs a perpetual symbol"):
            await source.fetch_funding(Symbol.parse("BTC/USDT"), 0, 10**18)
    finally:
        await source.aclose()


async def test_funding_through_ccxt_equals_the_truth(tmp_path: Path) -> None:
    history = FundingHistory.recent(40)  # ten days of hourly funding inside: full pages
    fake_type, _ = FUNDING_FAKES["binance"]
    fake = fake_type(history)
    key = DatasetKey.of("binance", PERP, "funding")
    start, end = history.first_ms * NS_PER_MS, history.last_ms * NS_PER_MS
    store = Store(tmp_path)
    async with serve(funding_app("binance", fake)) as url:
        source = CcxtSource("binance", Endpoints(url), options=LINEAR)
        try:
            result = await backfill(key, start=start, end=end, store=store, source=source)
        finally:
            await source.aclose()
    # ccxt's unified structure carries the rate only (no mark price, no interval)
    truth = history.truth(start, end, marks=False, intervals=False)
    assert truth.height > 300 and result.requests >= 10
    assert_frame_equal(store.read(key, start, end), truth, check_dtypes=False)
    assert store.coverage(key).holes(start, end) == []
    limits = {int(q["limit"]) for q in fake.requests if isinstance(q, dict) and "limit" in q}
    assert limits == {DERIVATIVES_PAGE_LIMIT}


async def test_open_interest_through_ccxt_equals_the_truth(tmp_path: Path) -> None:
    first_ms, end_ms = recent_ms(5)
    fake = OI_FAKES["binance"](OpenInterest(first_ms, end_ms))
    key = DatasetKey.of("binance", PERP, "open_interest", "5m")
    start, end = first_ms * NS_PER_MS, end_ms * NS_PER_MS
    store = Store(tmp_path)
    async with serve(oi_app("binance", fake)) as url:
        source = CcxtSource("binance", Endpoints(url), options=LINEAR)
        try:
            result = await backfill(key, start=start, end=end, store=store, source=source)
        finally:
            await source.aclose()
    truth = fake.data.truth("5m", start, end, value=True)
    assert truth.height > 1_000 and result.requests >= 14  # pages of 100 samples
    assert_frame_equal(store.read(key, start, end), truth, check_dtypes=False)
    assert store.coverage(key).holes(start, end) == []
