"""BitMEX ``orderBookL2`` bookkeeping: which price each level id stands for.

Why its own module: BitMEX's book deltas address levels by ``id`` (keys ``symbol``,
``id``, ``side``), and ``delete`` rows (and ``update`` rows on older API versions) carry
no price. To turn a delta into (price, amount) levels the parser must remember, per
symbol and per connection, the price of every level the ``partial`` and later
``insert`` rows announced. BitMEX sends no sequence numbers, so that memory is also
the only way to notice a lost frame: an ``update``/``delete`` of an id we never saw,
or an ``insert`` of an id we already hold, proves a message went missing.

The index numbers the book messages it applies itself (the partial is 0, each delta
the next integer); when it notices a lost frame it reports a delta that skips one
number, so the generic book upkeep (``dccd_core.operations.book``) declares a gap and
the stream resubscribes. Until the next ``partial`` the symbol's deltas are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dccd_core.domain import errors

from .parse import ContractSpec

__all__ = ["L2Delta", "L2Index"]

_SIDES = {"Buy": True, "Sell": False}  # is_bid


@dataclass(frozen=True, slots=True)
class L2Delta:
    """What one book message did to one symbol's book, as price levels.

    ``seq``: the index's own message number (partial = 0). ``lost``: a frame was
    missing before this one (``problem`` says why); the levels are then empty.
    """

    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    seq: int
    lost: bool = False
    problem: str = ""


@dataclass(slots=True)
class L2Index:
    """Level ``(id, side)`` -> price of one symbol's book on the current connection."""

    prices: dict[tuple[int, bool], float] = field(default_factory=dict)
    seq: int = 0
    #: True between a ``partial`` and the first lost frame
    synced: bool = False

    def reset(self) -> None:
        """Forget everything (a new connection): wait for the next ``partial``."""
        self.prices.clear()
        self.seq = 0
        self.synced = False

    def apply(
        self, action: str, rows: Sequence[dict[str, Any]], spec: ContractSpec, what: str
    ) -> L2Delta | None:
        """Apply one message's rows of this symbol; None while waiting for a partial."""
        if action == "partial":
            self.reset()
            self.synced = True
        elif not self.synced:
            return None  # BitMEX: drop what arrives before the partial
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        for row in rows:
            key = _key(row, what)
            if action in ("partial", "insert"):
                if action == "insert" and key in self.prices:
                    return self._lost(f"insert of level id {key[0]} already in the book")
                price = _number(row, "price", what)
                self.prices[key] = price
                amount = spec.base_amount(_number(row, "size", what), price, what)
            elif action == "update":
                found = self.prices.get(key)
                if found is None:
                    return self._lost(f"update of unknown level id {key[0]}")
                price = found
                amount = spec.base_amount(_number(row, "size", what), price, what)
            elif action == "delete":
                found = self.prices.pop(key, None)
                if found is None:
                    return self._lost(f"delete of unknown level id {key[0]}")
                price, amount = found, 0.0
            else:
                raise errors.UnexpectedPayload(f"{what}: unknown action {action!r}")
            if amount < 0 or (amount == 0 and action != "delete"):
                raise errors.UnexpectedPayload(
                    f"{what}: level id {key[0]} with size {row.get('size')!r}"
                )
            (bids if key[1] else asks).append((price, amount))
        if action != "partial":
            self.seq += 1
        return L2Delta(bids, asks, self.seq)

    def _lost(self, problem: str) -> L2Delta:
        self.synced = False
        self.prices.clear()
        return L2Delta([], [], self.seq + 2, lost=True, problem=problem)


def _key(row: dict[str, Any], what: str) -> tuple[int, bool]:
    level_id, side = row.get("id"), row.get("side")
    if side not in _SIDES:
        raise errors.UnexpectedPayload(f"{what}: unknown side {side!r}")
    try:
        return int(level_id), _SIDES[side]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise errors.UnexpectedPayload(f"{what}: level id {level_id!r} is not an integer") from None


def _number(row: dict[str, Any], key: str, what: str) -> float:
    try:
        value = float(row[key])
    except KeyError:
        raise errors.UnexpectedPayload(
            f"{what}: a level row has no {key!r}: {str(row)[:80]}"
        ) from None
    except (TypeError, ValueError):
        raise errors.UnexpectedPayload(f"{what}: {key} {row[key]!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise errors.UnexpectedPayload(f"{what}: {key} {row[key]!r} is not a finite number")
    return value
