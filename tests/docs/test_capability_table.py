"""docs/exchanges.md is generated from the declared capabilities and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from dccd_core.sources.capability_table import render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "exchanges.md"


def test_exchanges_doc_matches_the_code() -> None:
    assert DOC.read_text() == render_markdown(), (
        "docs/exchanges.md is stale: run "
        "`python -m dccd_core.sources.capability_table > docs/exchanges.md`"
    )


def test_every_native_exchange_declares_all_three_data_types() -> None:
    text = render_markdown()
    for exchange in ("binance", "coinbase", "kraken", "bybit", "okx", "bitfinex", "bitmex"):
        for data_type in ("ohlc", "trades", "book"):
            assert f"| {exchange} | {data_type} |" in text
