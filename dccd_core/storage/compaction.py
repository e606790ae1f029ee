"""Crash-safe replacement of a period's files (a compaction), and its recovery.

Its own module because the journal protocol below is the one part of the store whose
every step matters after a crash; the commits (``segments``) only call
``replace_files`` and ``recover``.

**Crash safety of a compaction** (sources -> target, e.g. segments -> base):

1. the merged content is written to a hidden file ``.{target}.new-{tx}`` and fsynced;
2. a journal ``.{target}.compact-{tx}.json`` naming the sources is written and fsynced,
   then the folder (both entries durable);
3. each source is renamed to a hidden name ``.{source}.absorbed-{tx}``; folder fsync;
4. the hidden new file is renamed over ``target`` (``os.replace``, atomic); folder fsync;
5. the journal is deleted, then (off the commit's path) the absorbed copies.

No name that a glob reads ever holds a row that another such name holds: before
step 4 the new content is hidden; after it the sources are. A crash before step 2
leaves an orphan hidden file; after it, the journal lets the next writer (which runs
``recover`` under the dataset lock before anything else) finish steps 3-5; absorbed
copies without a journal are garbage (the journal goes only once the target holds
their rows). Between steps 3 and 4 (a few renames and one fsync in a live run) a glob
reader misses the sources' rows: never a duplicate, and after a crash there the rows
wait in the hidden copies until recovery restores them; ``Store`` reads run that
recovery first whenever a journal is present. Hidden names never end in ``.parquet``.

On an object store each rename is a COPY then a DELETE (``fs.rename``): a crash between
the two leaves both names, and recovery simply repeats the step (every step is
idempotent); the visible target still appears whole, in one COPY.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dccd_core.domain import StoreError

from .files import fsync_dir, fsync_file
from .fs import list_entries, rename

__all__ = ["CRASH_POINTS", "has_pending_compaction", "recover", "replace_files"]

logger = logging.getLogger("dccd_core.storage.segments")

_NEW = ".new-"
_ABSORBED = ".absorbed-"
_JOURNAL = ".compact-"
_JOURNAL_END = ".json"

#: The steps of a compaction, in order; tests make ``_crash_point`` raise at each.
CRASH_POINTS = (
    "new_written",
    "journal_written",
    "source_hidden",
    "target_replaced",
    "journal_deleted",
)


def _crash_point(name: str) -> None:
    """A seam for crash tests (monkeypatched to raise); does nothing in production."""


def _journal_path(folder: Path, target: str, tx: str) -> Path:
    return folder / f".{target}{_JOURNAL}{tx}{_JOURNAL_END}"


def replace_files(
    folder: Path, sources: Sequence[str], target: str, write: Callable[[Path], None]
) -> None:
    """Replace the visible files ``sources`` (``target`` may be one) by ``target``;
    ``write(path)`` writes the new content to ``path`` and fsyncs it."""
    tx = secrets.token_hex(4)
    new = folder / f".{target}{_NEW}{tx}"
    write(new)  # hidden: a crash now leaves an orphan that recovery deletes
    _crash_point("new_written")
    journal = {
        "target": target,
        "new": new.name,
        "tx": tx,
        "sources": [s for s in sources if s != target],
    }
    path = _journal_path(folder, target, tx)
    path.write_text(json.dumps(journal), encoding="utf-8")
    fsync_file(path)
    fsync_dir(folder)  # the new file and the journal are durable before any source hides
    _crash_point("journal_written")
    _finish(folder, journal)


def _finish(folder: Path, journal: Mapping[str, object]) -> None:
    """Steps 3-5 of a compaction; idempotent, so recovery simply runs it again."""
    target, new_name, tx = str(journal["target"]), str(journal["new"]), str(journal["tx"])
    sources = [str(s) for s in journal["sources"]]  # type: ignore[attr-defined]
    new = folder / new_name
    if new.exists():
        for name in sources:
            with contextlib.suppress(FileNotFoundError):
                rename(folder / name, folder / f".{name}{_ABSORBED}{tx}")
                _crash_point("source_hidden")
        fsync_dir(folder)  # hidden for good before the new content appears
        rename(new, folder / target)
        fsync_dir(folder)
        _crash_point("target_replaced")
    with contextlib.suppress(FileNotFoundError):
        _journal_path(folder, target, tx).unlink()
    _crash_point("journal_deleted")
    # Absorbed copies are garbage once the journal is gone (it is deleted only after
    # the target holds their rows): delete them off the commit's path.
    absorbed = [folder / f".{name}{_ABSORBED}{tx}" for name in sources]
    threading.Thread(target=_unlink_all, args=(absorbed,), daemon=True).start()


def _unlink_all(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _is_journal(name: str) -> bool:
    return name.startswith(".") and _JOURNAL in name and name.endswith(_JOURNAL_END)


def has_pending_compaction(folder: Path) -> bool:
    """Whether a compaction journal is in ``folder`` (one is running, or one crashed)."""
    return any(_is_journal(e.name) for e in list_entries(folder))


def recover(folder: Path) -> int:
    """Finish interrupted compactions and drop leftovers; call under the dataset lock.

    Returns how many compactions were finished.
    """
    names = [e.name for e in list_entries(folder)]
    finished = 0
    for name in sorted(n for n in names if _is_journal(n)):
        tx = name[name.rindex(_JOURNAL) + len(_JOURNAL) : -len(_JOURNAL_END)]
        try:
            journal = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            if any(n.endswith(f"{_ABSORBED}{tx}") for n in names):
                raise StoreError(
                    f"unreadable compaction journal {folder / name}: {exc}; restore the "
                    f"files ending in '{_ABSORBED}{tx}' to their visible names (drop the "
                    "leading '.' and that suffix), then delete the journal"
                ) from exc
            # Cut off while being written: no source was hidden yet, nothing to finish.
            (folder / name).unlink()
            continue
        _finish(folder, journal)
        logger.warning(
            "finished an interrupted compaction of %s in %s", journal.get("target"), folder
        )
        finished += 1
    for name in names:
        # New content whose journal was never written, and absorbed copies (every
        # journal is finished by now, so the targets hold their rows): never visible.
        if name.startswith(".") and (_NEW in name or _ABSORBED in name):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
    return finished
