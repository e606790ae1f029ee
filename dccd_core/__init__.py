"""dccd core library: ``from dccd_core import read, inventory``.

Exports resolve lazily (PEP 562), so ``import dccd_core.storage`` or the ``dccd``
command do not pay for importing every verb and its dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .operations import (
        BackfillProgress,
        BackfillResult,
        backfill,
        backfill_sync,
        inventory,
        read,
    )
    from .operations.ensure import ensure, ensure_async
    from .operations.status import status
    from .operations.symbols_cache import symbols, symbols_async

# public name -> module that defines it; add new exports here
_EXPORTS = {
    "BackfillProgress": ".operations",
    "BackfillResult": ".operations",
    "backfill": ".operations",
    "backfill_sync": ".operations",
    "ensure": ".operations.ensure",
    "ensure_async": ".operations.ensure",
    "status": ".operations.status",
    "symbols": ".operations.symbols_cache",
    "symbols_async": ".operations.symbols_cache",
    "inventory": ".operations",
    "read": ".operations",
}

__all__ = [
    "BackfillProgress",
    "BackfillResult",
    "backfill",
    "backfill_sync",
    "ensure",
    "ensure_async",
    "inventory",
    "read",
    "status",
    "symbols",
    "symbols_async",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
