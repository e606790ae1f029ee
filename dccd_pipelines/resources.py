"""Dagster resources: the store every dccd run writes through.

``DccdStore`` wraps the core's ``Store`` at one root (the catalog's ``store.root``, or
``DCCD_DATA_PATH``). The Parquet IO manager (``io_manager.py``) holds it, and asset
bodies and stream runs open the same ``Store`` from it, so there is exactly one way
into the lake: ``Store``'s locked, atomic merge-writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from dccd_core.storage import Store

__all__ = ["STORE_KEY", "DccdStore", "dccd_resources"]

#: The resource key of the store (asset bodies, checks and stream runs ask for it).
STORE_KEY = "dccd_store"


class DccdStore(ConfigurableResource):  # type: ignore[type-arg]
    """The Parquet lake at ``root``. ``open()`` returns the core ``Store``.

    https://docs.dagster.io/guides/build/external-resources
    """

    root: str

    def open(self) -> Store:
        """The core store at ``root`` (cheap: no I/O until it reads or writes)."""
        from dccd_core.storage import Store

        return Store(root=self.root)


def dccd_resources(root: str) -> dict[str, Any]:
    """The resources of every dccd definition: the store and the IO manager holding it."""
    from .io_manager import IO_MANAGER_KEY, DccdIOManager

    store = DccdStore(root=root)
    return {STORE_KEY: store, IO_MANAGER_KEY: DccdIOManager(store=store)}
