"""The verbs on a catalog: ``validate`` (is it loadable) and ``status`` (how fresh is
each of its datasets; exit 1 when any is stale or missing, so it serves as a health
check). Both read it as the Dagster project does (``dccd_pipelines.catalog``: Dagster's
cron validator); ``status`` reads the stream column from the Dagster instance
(``dccd_pipelines.run_records``): this package is the outermost layer, the one that
may join the core and the pipelines.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dccd_core.domain import ConfigError, DccdError

from .app import ROOT, cli

if TYPE_CHECKING:
    from dccd_core.catalog import Catalog

__all__ = ["status_cmd", "validate_cmd"]


def _load(catalog: Path | None) -> Catalog:
    """The catalog (default: $DCCD_CONFIG, else ./dccd.yaml); any problem a ``ConfigError``."""
    from dccd_pipelines.catalog import load_catalog

    try:
        return load_catalog(os.fspath(catalog) if catalog is not None else None)
    except DccdError:
        raise
    except ValueError as exc:  # e.g. a pydantic ValidationError that slipped through
        raise ConfigError(str(exc)) from exc


@cli.command("validate")
@click.argument("catalog", required=False, type=click.Path(dir_okay=False, path_type=Path))
def validate_cmd(catalog: Path | None) -> None:
    """Check a catalog (default: $DCCD_CONFIG, else ./dccd.yaml); list its datasets and
    whether archive files back each one's history."""
    from dccd_core.catalog.archive_backing import archive_backing

    loaded = _load(catalog)
    click.echo(f"ok: {len(loaded.datasets)} datasets")
    for spec in loaded.datasets:
        click.echo(f"  {spec.key}: {archive_backing(spec)}")


@cli.command("status")
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The catalog (default: $DCCD_CONFIG, else ./dccd.yaml).",
)
@click.option(
    "--stale-after", default="2h", show_default=True, help="Age past which data is stale."
)
@click.option(
    "--days", type=click.IntRange(min=1), default=7, show_default=True, help="Hole window."
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@ROOT
def status_cmd(
    catalog: Path | None, stale_after: str, days: int, fmt: str, root: Path | None
) -> None:
    """Freshness of every catalog dataset; exit 1 if any is stale or missing."""
    from dccd_core.operations.status import parse_duration_s, status, status_lines
    from dccd_pipelines.run_records import stream_states

    parse_duration_s(stale_after)  # a bad duration is named before the catalog is read
    report = status(
        _load(catalog), stale_after=stale_after, days=days, root=root, streams=stream_states
    )
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in status_lines(report):
            click.echo(line)
    sys.exit(0 if report.healthy else 1)
