"""A lake root that cannot be written is said before the first request (issue 10)."""

from __future__ import annotations

import os
from pathlib import Path
from unittest.mock import MagicMock

import pytest

from dccd_core import backfill
from dccd_core.domain import DatasetKey, StoreError
from dccd_core.storage import Store

KEY = DatasetKey.of("binance", "BTC/USDT", "trades")


async def test_backfill_into_an_uncreatable_root_fails_before_any_request(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    source = MagicMock()
    with pytest.raises(StoreError, match=r"root .*/file/lake cannot be created: .* is a file"):
        await backfill(KEY, start="2024-01-01", end="2024-01-02",
                       store=Store(blocker / "lake"), source=source)
    assert source.mock_calls == []  # not one request, not even the symbol check


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
async def test_backfill_into_a_read_only_root_fails_before_any_request(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    source = MagicMock()
    try:
        with pytest.raises(StoreError, match="is not writable"):
            await backfill(KEY, start="2024-01-01", end="2024-01-02",
                           store=Store(tmp_path), source=source)
    finally:
        tmp_path.chmod(0o700)
    assert source.mock_calls == []


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    Store(tmp_path / "a" / "b").check_writable()  # to be created: probes tmp_path
    Store(tmp_path).check_writable()
    assert list(tmp_path.iterdir()) == []
