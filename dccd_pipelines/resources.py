"""The resources of every dccd definition: the store (``store.py``) and the IO manager
holding it (``io_manager.py``), under the keys the assets, checks and stream runs use.
"""

from __future__ import annotations

from typing import Any

from .io_manager import IO_MANAGER_KEY, DccdIOManager
from .store import STORE_KEY, DccdStore

__all__ = ["IO_MANAGER_KEY", "STORE_KEY", "DccdStore", "dccd_resources"]


def dccd_resources(root: str) -> dict[str, Any]:
    """The store and the IO manager holding it, by resource key."""
    store = DccdStore(root=root)
    return {STORE_KEY: store, IO_MANAGER_KEY: DccdIOManager(store=store)}
