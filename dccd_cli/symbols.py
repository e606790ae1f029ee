"""``dccd symbols EXCHANGE``: the exchange's markets (``dccd_core.symbols``); served from
the on-disk cache with a ``warning:`` line (exit 0) when the exchange cannot be
reached, exit 2 when there is no cache either."""

from __future__ import annotations

import json

import click

from .app import cli

__all__ = ["symbols_cmd"]


@cli.command("symbols")
@click.argument("exchange")
@click.option("--quote", default=None, help="Only markets quoted in this asset, e.g. USDT.")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["spot", "linear", "inverse"]),
    default=None,
    help="Only spot, linear (settled in the quote) or inverse (settled in the base) markets.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--refresh", is_flag=True, help="Ask the exchange even if the cache is recent.")
def symbols_cmd(
    exchange: str, quote: str | None, kind: str | None, fmt: str, refresh: bool
) -> None:
    """List an exchange's markets in dccd's unified form (cached on disk for an hour)."""
    from dccd_core.operations.symbols_cache import symbols

    listing = symbols(exchange, quote=quote, type=kind, refresh=refresh)
    if listing.warning:
        click.echo(f"warning: {listing.warning}", err=True)
    if fmt == "json":
        payload = {
            "exchange": listing.exchange,
            "fetched_at": listing.fetched_at,
            "from_cache": listing.from_cache,
            "symbols": listing.rows(),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    rows = [("symbol", "type", "base", "quote", "settle")] + [
        (r["symbol"] or "", r["type"] or "", r["base"] or "", r["quote"] or "", r["settle"] or "-")
        for r in listing.rows()
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    source = "cache" if listing.from_cache else listing.exchange
    click.echo(f"{len(listing.symbols)} markets (from {source}, fetched {listing.fetched_at})")
