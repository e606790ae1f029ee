"""The store every dccd run writes through, as a Dagster resource.

``DccdStore`` wraps the core's ``Store`` at one root (the catalog's ``store.root``, or
``DCCD_DATA_PATH``). Asset bodies, checks and stream runs open the same ``Store`` from
it, and the IO manager (``io_manager.py``) reads through it, so there is exactly one way
into the lake: ``Store``'s locked, atomic merge-writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from dccd_core.storage import Store

__all__ = ["STORE_KEY", "DccdStore"]

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
