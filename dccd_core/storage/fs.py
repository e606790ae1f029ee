"""The filesystem seam of the lake: the few operations that differ between a local root
and an object store (``s3://bucket/prefix``, see ``objectstore``).

Everything else the store does goes through ``pathlib.Path`` methods, which an
``ObjectPath`` implements on the bucket. What a path object cannot say is here, with
both behaviours side by side:

==================  ===============================  ==================================
operation           local root (unchanged)            object store
==================  ===============================  ==================================
list a folder       ``os.scandir``                    LIST with delimiter
rename              ``os.replace`` (atomic)           COPY then DELETE (see below)
delete              ``os.unlink``                     DELETE
durability          fsync file and folder             none needed: a PUT is durable
atomic replace      temp file + fsync + rename        local temp file, one PUT
read Parquet        path                              ``s3://`` URL + storage options
dataset lock        ``filelock`` (``lock``)           lease object (``lease``)
==================  ===============================  ==================================

A rename on an object store is not atomic: between the COPY and the DELETE both names
exist. The store renames only inside a compaction, whose journal makes every step
idempotent (``compaction``), and only between a hidden name and a visible one, so a
reader never sees a row under two visible names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from .objectstore import ObjectPath, ObjectStoreOptions, is_object_url, object_root

__all__ = [
    "Entry",
    "is_object_path",
    "lake_path",
    "list_entries",
    "parquet_sources",
    "remove",
    "rename",
]


class Entry(NamedTuple):
    """One name in a folder: what ``os.DirEntry`` tells, on either backend."""

    name: str
    is_file: bool
    is_dir: bool


def is_object_path(path: Path) -> bool:
    """Whether ``path`` lives in an object store."""
    return isinstance(path, ObjectPath)


def lake_path(root: str | os.PathLike[str], options: ObjectStoreOptions | None = None) -> Path:
    """``root`` as a lake path: an ``ObjectPath`` for ``s3://...`` (or one already),
    else a local ``Path``. Never ``Path(root)`` on a lake root: it would turn a bucket
    path into a local one."""
    if isinstance(root, ObjectPath) or is_object_url(root):
        return object_root(root, options)  # type: ignore[arg-type]
    return root if isinstance(root, Path) else Path(root)


def list_entries(folder: Path) -> list[Entry]:
    """The names in ``folder`` (empty when it does not exist)."""
    if isinstance(folder, ObjectPath):
        return [Entry(*e) for e in folder.list_entries()]
    try:
        with os.scandir(folder) as entries:
            return [Entry(e.name, e.is_file(), e.is_dir()) for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return []


def rename(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing it (``FileNotFoundError`` if ``src`` is gone).

    Local: ``os.replace``, atomic. Object store: COPY then DELETE; see the module doc.
    """
    if isinstance(src, ObjectPath) and isinstance(dst, ObjectPath):
        src.copy_to(dst)
        src.unlink(missing_ok=True)
        return
    os.replace(src, dst)


def remove(path: Path) -> None:
    """Delete ``path`` (``FileNotFoundError`` if it is not there)."""
    path.unlink()


def parquet_sources(
    paths: Sequence[Path] | Iterable[Path],
) -> tuple[list[str] | list[Path], dict[str, str] | None]:
    """What polars' ``read_parquet`` / ``scan_parquet`` take for ``paths``: the paths
    themselves, or their ``s3://`` URLs with the bucket's storage options."""
    paths = list(paths)
    remote = [p for p in paths if isinstance(p, ObjectPath)]
    if not remote:
        return paths, None
    if len(remote) != len(paths):
        raise TypeError("a read mixes local and object-store files")
    return [p.url for p in remote], remote[0].storage_options
