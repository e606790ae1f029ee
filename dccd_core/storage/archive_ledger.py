"""Which archive files a dataset's rows came from: the provenance ledger.

A period file's footer says *that* its rows came from an archive (``transport:
archive``) and from which files; this ledger says what each file *was* when it was
ingested: its name, the sha256 of the bytes read, the sha256 the exchange published
beside it, its rows and ``[start_ts, end_ts)``, and when. Exchanges have replaced files
after publication; the ``archives_verified`` asset check compares the published sha256
of today with the one recorded here.

A small JSON file beside the coverage record (``{dataset_dir}/_archives.json``), one
entry per file name (a re-ingested file replaces its entry), replaced atomically under
the dataset lock, written only after the file's rows are committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from dccd_core.domain import DatasetKey

from .commit import locked_dataset
from .files import atomic_write
from .layout import dataset_dir

__all__ = [
    "ARCHIVE_LEDGER_FILE",
    "LedgerEntry",
    "ledger_path",
    "read_archive_ledger",
    "record_archive_files",
]

logger = logging.getLogger(__name__)

ARCHIVE_LEDGER_FILE = "_archives.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ingested archive file. ``path`` is its documented path under the archive
    origin (what a verifier fetches again); ``published_sha256`` is None where the
    exchange publishes no checksum."""

    name: str
    path: str
    checksum_path: str | None
    sha256: str
    published_sha256: str | None
    rows: int
    start_ts: int
    end_ts: int
    ingested_at: str


def ledger_path(root: str | Path, key: DatasetKey) -> Path:
    """The dataset's archive ledger."""
    return dataset_dir(root, key) / ARCHIVE_LEDGER_FILE


def _load(path: Path) -> dict[str, LedgerEntry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
        if data.get("version") != _VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        entries = [LedgerEntry(**item) for item in data["files"]]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # provenance only: the rows and coverage are intact; start a new ledger
        logger.warning("archive ledger %s is unreadable (%s); starting a new one", path, exc)
        return {}
    return {entry.name: entry for entry in entries}


def read_archive_ledger(
    root: str | Path, key: DatasetKey, start_ts: int | None = None, end_ts: int | None = None
) -> list[LedgerEntry]:
    """The ingested files of ``key`` (overlapping ``[start_ts, end_ts)`` if given),
    oldest first. A missing or unreadable ledger reads as empty."""
    entries = sorted(_load(ledger_path(root, key)).values(), key=lambda e: (e.start_ts, e.name))
    return [
        e
        for e in entries
        if (start_ts is None or e.end_ts > start_ts) and (end_ts is None or e.start_ts < end_ts)
    ]


def record_archive_files(root: str | Path, key: DatasetKey, entries: Iterable[LedgerEntry]) -> None:
    """Add (or replace, by name) ``entries`` in the ledger, under the dataset lock."""
    new = list(entries)
    if not new:
        return
    with locked_dataset(Path(root), key):
        path = ledger_path(root, key)
        ledger = _load(path)
        ledger.update((entry.name, entry) for entry in new)
        files = [asdict(e) for e in sorted(ledger.values(), key=lambda e: (e.start_ts, e.name))]
        payload = json.dumps({"version": _VERSION, "files": files}, indent=1)

        def write(tmp: Path) -> None:
            tmp.write_text(payload + "\n", encoding="utf-8")

        atomic_write(path, write)
