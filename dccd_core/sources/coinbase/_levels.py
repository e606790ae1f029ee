"""Book levels as sent (``[["42000.01", "0.5", ...], ...]``) -> (price, amount) floats."""

from __future__ import annotations

from typing import Any

from dccd_core.domain import UnexpectedPayload

__all__ = ["float_levels"]


def float_levels(levels: Any, what: str) -> list[tuple[float, float]]:
    """Numbers or numeric strings; the first two fields of each level."""
    if not isinstance(levels, list):
        raise UnexpectedPayload(f"{what}: levels must be a list, got {levels!r}")
    try:
        return [(float(level[0]), float(level[1])) for level in levels]
    except (TypeError, ValueError, IndexError) as exc:
        raise UnexpectedPayload(f"{what}: bad level in {levels[:3]!r}") from exc
