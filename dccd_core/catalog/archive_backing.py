"""Whether bulk-file archives back a catalog dataset, in one line (``dccd validate``).

A dataset's history comes archive-first only when all of these hold: its mode is not
``off``, the exchange publishes files of its series (``Capability.archives``), and an
archive origin applies (the catalog's or the environment's ``archive_url``, else the
documented one unless the REST origin alone was overridden: a testnet or fake exchange
is never mixed with the public files; ``backfill.archive_origin_chosen`` at run time).
Saying it at validation shows what a run will do before it runs.
"""

from __future__ import annotations

from dccd_core.domain import STREAM_ONLY, DataType
from dccd_core.sources.archives.mode import ArchiveMode

from .exchanges import exchange_capability
from .specs import DatasetSpec

__all__ = ["archive_backing"]


def _default_archive_url(exchange: str) -> str | None:
    from dccd_core.sources.registry import source_class

    cls, native = source_class(exchange)
    return cls.default_archive_url if native else None


def archive_backing(spec: DatasetSpec) -> str:
    """``archives <mode> ...``: the origin and the kinds of files backing ``spec``'s
    history, or why none do (REST only)."""
    key = spec.key
    mode = spec.archives
    if key.data_type is DataType.BOOK or key.data_type in STREAM_ONLY:
        return "no history to fetch (archives not used)"
    if mode is ArchiveMode.OFF:
        return "archives off (REST only)"
    capability = exchange_capability(key.exchange)
    feature = (
        capability.archive(key.data_type, key.symbol.market_kind, key.span)
        if capability is not None
        else None
    )
    if feature is None:
        series = f"{key.symbol.market_kind} {key.data_type}" + (
            f" {key.span}" if key.span is not None else ""
        )
        return f"archives {mode}: {key.exchange} publishes no files of {series} (REST only)"
    origin = spec.archive_url
    if origin is None:
        if spec.rest_url is not None and mode is ArchiveMode.AUTO:
            return (
                f"archives {mode}: not used, the REST origin is overridden and no "
                f"archive_url is set (REST only; set exchanges.{key.exchange}.archive_url)"
            )
        origin = _default_archive_url(key.exchange)
    kinds = "+".join(str(g) for g in feature.granularities)
    checksum = "sha256 published" if feature.checksum else "no published checksum"
    return f"archives {mode} from {origin}: {kinds} {key.data_type} files, {checksum}"
