"""The exchanges' capability table, generated from the declared ``Capability`` objects.

``docs/exchanges.md`` is this module's output; a test regenerates it and fails when
the two differ, so the documentation can never promise what the code does not declare.
Regenerate with ``python -m dccd_core.sources.capability_table > docs/exchanges.md``.
"""

from __future__ import annotations

from dccd_core.domain import ArchiveFeature, Capability, DataType, Feature, Transport

from .registry import NATIVE_SOURCES, source_class

__all__ = ["archive_rows", "capability_rows", "render_markdown"]

_HEADER = """# Exchanges: what each API can serve

Generated from the sources' declared capabilities by
`python -m dccd_core.sources.capability_table` (a test keeps this file in sync).
Anything not listed raises `NoCapability` before a single request, naming the
alternative where there is one. Any other exchange ccxt knows is served by the generic
ccxt source: candles and trades over REST, and funding and open-interest history where
ccxt's `has` says `fetchFundingRateHistory` / `fetchOpenInterestHistory` (perpetuals),
with capabilities read from ccxt's `has` and `timeframes`.
"""
_COLUMNS = (
    "exchange",
    "data type",
    "transport",
    "history",
    "page limit",
    "direction",
    "spans / depths / channel",
    "alternative",
)
_ARCHIVES_HEADER = """
## Archives: history as bulk files

Where an exchange publishes its history as files, backfills read them first (monthly
files for whole closed months, then daily files for closed days published `lag` days
later, then REST for the recent tail). The origin is overridable like REST:
`exchanges.<name>.archive_url` in the catalog or `DCCD_<EXCHANGE>_ARCHIVE_URL`.
Without a published checksum, only the compressed stream's integrity and the rows'
plausibility are verified.

Where files serve the history, REST's own depth limits only what REST must fetch:
Bybit keeps only its latest trades over REST, so its perpetuals' trade history comes
from the daily files alone, and days not published yet are reported uncovered (not
complete; collect recent trades with a stream). BitMEX publishes one dump per day
holding every symbol's trades: each dataset downloads the whole day's file and keeps
its own symbol's rows, so N BitMEX trade datasets download each day N times (a known
cost: the copies are not shared across datasets).
"""
_ARCHIVE_COLUMNS = ("exchange", "data type", "markets", "files", "spans", "lag", "sha256", "layout")


def _details(feature: Feature) -> str:
    parts: list[str] = []
    if feature.spans:
        parts.append(" ".join(s.label for s in sorted(feature.spans)))
    if feature.book_depths:
        parts.append("depths " + ", ".join(str(d) for d in feature.book_depths))
    if feature.transport is Transport.WS and feature.channel:
        parts.append(f"`{feature.channel}`")
    return "; ".join(parts) or "-"


def capability_rows(capability: Capability) -> list[str]:
    """One markdown row per declared feature, in a stable order."""
    order = {data_type: i for i, data_type in enumerate(DataType)}  # declaration order
    features = sorted(capability.features, key=lambda f: (order[f.data_type], f.transport.value))
    rows = []
    for f in features:
        paged = f.transport is Transport.REST and f.data_type is not DataType.BOOK
        page = str(f.page_limit) if f.page_limit and paged else "-"
        direction = f.direction.value if paged else "-"
        rows.append(
            f"| {capability.exchange} | {f.data_type} | {f.transport} | {f.history_label} "
            f"| {page} | {direction} | {_details(f)} | {f.alternative or '-'} |"
        )
    return rows


def archive_rows(capability: Capability) -> list[str]:
    """One markdown row per declared archive series."""

    def row(a: ArchiveFeature) -> str:
        spans = " ".join(s.label for s in sorted(a.spans)) or "-"
        files = ", ".join(g.value for g in a.granularities)
        checksum = "yes" if a.checksum else "none published"
        layout = f"[docs]({a.docs_url})" if a.docs_url else "undocumented"
        return (
            f"| {capability.exchange} | {a.data_type} | {', '.join(a.markets)} | {files} "
            f"| {spans} | {a.lag_days} d | {checksum} | {layout} |"
        )

    return [row(a) for a in capability.archives]


def render_markdown() -> str:
    """The whole of ``docs/exchanges.md``."""
    lines = [
        _HEADER,
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    for exchange in NATIVE_SOURCES:
        cls, _native = source_class(exchange)
        lines.extend(capability_rows(cls.capability))
    lines += [
        _ARCHIVES_HEADER,
        "| " + " | ".join(_ARCHIVE_COLUMNS) + " |",
        "|" + "---|" * len(_ARCHIVE_COLUMNS),
    ]
    for exchange in NATIVE_SOURCES:
        cls, _native = source_class(exchange)
        lines.extend(archive_rows(cls.capability))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
