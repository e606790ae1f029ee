"""Which archive reader a backfill uses, if any: the mode, the exchange's published
series and the chosen origin decide (``backfill`` calls these before any data page).

``archive_origin_chosen`` keeps a REST origin overridden alone (a testnet, a fake
exchange) from being mixed with the public files; ``require_archive`` refuses
``archives: only`` on a series nobody publishes, naming the fix.
"""

from __future__ import annotations

import logging
import os

from dccd_core.domain import ConfigError, DatasetKey
from dccd_core.sources.archives.base import ArchiveReader
from dccd_core.sources.archives.mode import ArchiveMode
from dccd_core.sources.base import Source

__all__ = ["archive_origin_chosen", "archive_reader_for", "require_archive"]

log = logging.getLogger("dccd.backfill")


def require_archive(source: Source, key: DatasetKey, mode: ArchiveMode) -> bool:
    """Whether ``key`` has bulk files to use under ``mode``; ``archives: only`` on a
    series the exchange does not publish is a ConfigError naming the fix."""
    if mode is ArchiveMode.OFF:
        return False
    feature = source.capability.archive(key.data_type, key.symbol.market_kind, key.span)
    if feature is None and mode is ArchiveMode.ONLY:
        raise ConfigError(
            f"archives: only, but {key.exchange} publishes no archive files of "
            f"{key.symbol.market_kind} {key.data_type}"
            + (f" {key.span}" if key.span is not None else "")
            + ": use archives: auto (archive files where there are any, else REST) "
            "or archives: off"
        )
    return feature is not None


def archive_origin_chosen(source: Source, archive_url: str | None) -> bool:
    """Whether the exchange's archive files may back this source's history: an archive
    origin was chosen (``archive_url``, ``DCCD_<EXCHANGE>_ARCHIVE_URL``), or the source
    talks to its exchange's own REST origin, whose documented archives hold the same
    data. A REST origin overridden alone (a testnet, a fake exchange) is never mixed
    with the public archives."""
    if archive_url or os.environ.get(f"DCCD_{source.id.upper()}_ARCHIVE_URL"):
        return True
    default = getattr(type(source), "default_endpoints", None)
    return default is not None and source.endpoints.rest_url == default.rest_url


def archive_reader_for(
    key: DatasetKey,
    source: Source,
    mode: ArchiveMode,
    given: ArchiveReader | None,
    archive_url: str | None,
) -> tuple[ArchiveReader | None, ArchiveReader | None]:
    """(the reader to use or None for REST only, the one built here to close)."""
    if given is not None:
        return given, None
    if mode is not ArchiveMode.ONLY and not archive_origin_chosen(source, archive_url):
        log.info(
            "%s: history over REST: the REST origin is overridden (%s) and no archive "
            "origin is set (archive_url or DCCD_%s_ARCHIVE_URL)",
            key,
            source.endpoints.rest_url,
            key.exchange.upper(),
        )
        return None, None
    from dccd_core.sources import registry

    built = registry.build_archive_reader(key.exchange, archive_url=archive_url)
    if built is None and mode is ArchiveMode.ONLY:
        raise ConfigError(
            f"archives: only, but no archive reader exists for {key.exchange}: "
            "use archives: auto or off"
        )
    return built, built
