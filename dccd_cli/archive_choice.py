"""Which ``archives:`` mode (and archive origin) ``dccd backfill`` uses for a dataset.

The catalog is where a dataset's ``archives:`` is set for the Dagster assets; a manual
``dccd backfill`` of the same dataset must not quietly do something else (read archive
files the catalog turned off, or ignore its ``exchanges.<name>.archive_url``). So:

* ``--archives`` given: it wins (the catalog's archive_url still applies);
* else the dataset is in the catalog (``$DCCD_CONFIG``, else ``./dccd.yaml``): its
  ``archives:`` and archive_url;
* else ``auto``, the catalog's own default.

The choice is said in the command's summary (``ArchiveChoice.label``), so what ran is
never a guess. A catalog that cannot be read is an error (naming the file) when the
mode depends on it; under an explicit ``--archives`` it is only warned about, so a
broken ``./dccd.yaml`` does not block a backfill whose mode was given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import click

from dccd_core.catalog import catalog_path, load_catalog
from dccd_core.domain import ConfigError, DatasetKey
from dccd_core.sources.archives.mode import ArchiveMode

__all__ = ["ArchiveChoice", "choose_archives"]


@dataclass(frozen=True, slots=True)
class ArchiveChoice:
    """The mode a backfill runs with, the archive origin (None: env/default), and why."""

    mode: ArchiveMode
    archive_url: str | None
    #: where the mode came from: ``--archives``, ``catalog <path>`` or ``default``
    origin: str

    @property
    def label(self) -> str:
        """``archives off (catalog /x/dccd.yaml)``: for the command's summary line."""
        return f"archives {self.mode} ({self.origin})"


def choose_archives(key: DatasetKey, flag: str | None) -> ArchiveChoice:
    """The ``ArchiveChoice`` of ``key`` (module docstring for the order)."""
    given = ArchiveMode(flag.lower()) if flag is not None else None
    path = catalog_path()
    if not path.is_file() and not os.environ.get("DCCD_CONFIG"):
        # no catalog at all (a plain CLI user): nothing to follow
        return ArchiveChoice(given or ArchiveMode.AUTO, None, _origin(given, "default"))
    try:
        catalog = load_catalog(path)
    except ConfigError as exc:
        if given is None:
            raise ConfigError(
                f"{exc} (dccd backfill reads the dataset's archives: mode from the "
                "catalog; fix it, or pass --archives auto|off|only)"
            ) from None
        click.echo(f"warning: catalog not read, its archive_url not used: {exc}", err=True)
        return ArchiveChoice(given, None, "--archives")
    spec = next((s for s in catalog.datasets if s.key == key), None)
    if spec is None:
        return ArchiveChoice(given or ArchiveMode.AUTO, None, _origin(given, "default"))
    if given is not None:
        return ArchiveChoice(given, spec.archive_url, "--archives")
    return ArchiveChoice(spec.archives, spec.archive_url, f"catalog {catalog.path}")


def _origin(given: ArchiveMode | None, otherwise: str) -> str:
    return "--archives" if given is not None else otherwise
