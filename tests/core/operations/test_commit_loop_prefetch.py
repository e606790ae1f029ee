"""The commit loop's look-ahead is bounded by rows as well as chunks: big archive
batches must not pile up a whole file in memory while a commit runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import polars as pl

from dccd_core.operations.backfill.commit_loop import _prefetch
from dccd_core.transport.paginate import Chunk


async def test_prefetch_holds_about_max_rows() -> None:
    produced = 0

    async def chunks() -> AsyncGenerator[Chunk, None]:
        nonlocal produced
        for i in range(20):
            produced += 1
            yield Chunk(pl.DataFrame({"ts": range(50_000)}), i, i + 1)

    async with contextlib.aclosing(_prefetch(chunks(), depth=64, max_rows=120_000)) as ahead:
        first = await anext(ahead)
        await asyncio.sleep(0.05)  # the producer runs ahead as far as it may
        assert first.rows.height == 50_000
        assert produced <= 5  # ~120k rows queued (3 chunks) + the one handed out + one waiting
        rest = [chunk async for chunk in ahead]
    assert len(rest) == 19 and produced == 20
