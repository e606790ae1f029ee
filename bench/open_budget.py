"""Dask worker preload for ``bench_distributed``: the request budget opened (10^9 weight
a minute) but still shared through PostgreSQL, so the bench measures the workers and the
shared bucket's round trips, not Binance's budget (which would cap every worker count
at the same rate: that is the point of the budget).

    dask worker ... --preload bench.open_budget
"""

from __future__ import annotations

from typing import Any

import dccd_core.transport.shared_limiter as shared

_budget_limiter = shared.budget_limiter


def _opened(exchange: str, weight_per_minute: int, **kwargs: Any) -> Any:
    return _budget_limiter(exchange, 10**9, **kwargs)


shared.budget_limiter = _opened  # build_source imports it at call time
