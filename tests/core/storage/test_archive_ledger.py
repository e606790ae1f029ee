"""The archive ledger: one entry per file name, replaced atomically, filtered by window;
an unreadable ledger reads as empty (provenance only: rows and coverage are intact)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dccd_core.domain import NS_PER_DAY, DatasetKey, to_ns
from dccd_core.storage.archive_ledger import (
    LedgerEntry,
    ledger_path,
    read_archive_ledger,
    record_archive_files,
)

KEY = DatasetKey.of("binance", "BTC/USDT", "trades")
DAY = to_ns("2024-05-10")


def _entry(i: int, sha: str = "a" * 64) -> LedgerEntry:
    name = f"BTCUSDT-aggTrades-2024-05-{10 + i}.zip"
    start = DAY + i * NS_PER_DAY
    return LedgerEntry(name, f"/data/{name}", f"/data/{name}.CHECKSUM", sha, sha, 100 + i,
                       start, start + NS_PER_DAY, "2026-12-05T00:00:00+00:00")


def test_record_replace_and_window(tmp_path: Path) -> None:
    record_archive_files(tmp_path, KEY, [_entry(1), _entry(0)])
    record_archive_files(tmp_path, KEY, [_entry(1, "b" * 64), _entry(2)])
    entries = read_archive_ledger(tmp_path, KEY)
    assert [e.rows for e in entries] == [100, 101, 102]  # oldest first, one per name
    assert entries[1].sha256 == "b" * 64  # re-ingested: replaced
    window = read_archive_ledger(tmp_path, KEY, DAY + NS_PER_DAY, DAY + 2 * NS_PER_DAY)
    assert [e.name for e in window] == [_entry(1).name]
    assert not list(ledger_path(tmp_path, KEY).parent.glob(".*"))  # no temp left


def test_unreadable_ledger_reads_empty_and_is_rewritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record_archive_files(tmp_path, KEY, [_entry(0)])
    ledger_path(tmp_path, KEY).write_text("{not json", encoding="utf-8")
    assert read_archive_ledger(tmp_path, KEY) == []
    assert "unreadable" in caplog.text
    record_archive_files(tmp_path, KEY, [_entry(1)])
    assert [e.name for e in read_archive_ledger(tmp_path, KEY)] == [_entry(1).name]
    assert read_archive_ledger(tmp_path / "nowhere", KEY) == []
