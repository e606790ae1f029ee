"""The ``dccd`` click group, its shared options and THE error handling of every verb.

Every user mistake ends as ONE line on stderr, ``error: <message>``, and exit code 2:
``DccdError`` (bad names, bad times, damaged files), click's usage errors and file
system errors alike; an error that carries several problems (an invalid catalog)
prints one such line per problem. A traceback means a bug in dccd, never a typo.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from dccd_core.domain import ConfigError, DccdError, to_ns

__all__ = ["END", "ROOT", "SPAN", "START", "cli", "dataset_arguments", "main", "parse_time"]

_EXIT_USER_ERROR = 2
_NoArgsIsHelp: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_NeverRaised", (click.UsageError,), {})
)


def _fail(message: str, code: int = _EXIT_USER_ERROR, more: Sequence[str] = ()) -> None:
    """``error: <first line>`` (and one more line per item of ``more``), then exit."""
    for text in (message, *more):
        first = text.strip().splitlines()[0] if text.strip() else "failed"
        click.echo(f"error: {first}", err=True)
    sys.exit(code)


class _DccdGroup(click.Group):
    """A click group whose errors are one line, also under ``CliRunner``."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except DccdError as exc:
            problems = list(getattr(exc, "problems", ())) or [str(exc)]
            _fail(problems[0], more=problems[1:])
        except _NoArgsIsHelp as exc:  # bare `dccd` or `dccd read`: show the help
            click.echo(exc.format_message(), err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            _fail("aborted", 1)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see {exc.ctx.command_path} --help)"
            _fail(exc.format_message() + hint, exc.exit_code)
        except BrokenPipeError:
            sys.stderr.close()  # `dccd read ... | head`: the reader left, nothing to say
            sys.exit(0)
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _lake_root(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    """A local folder as a Path; an object-store root (``s3://bucket/prefix``) kept as
    the URL (a Path would fold its ``//``)."""
    if value is None or value.lower().startswith("s3://"):
        return value
    return click.Path(file_okay=False, path_type=Path).convert(value, param, ctx)


ROOT = click.option(
    "--root",
    type=str,
    callback=_lake_root,
    default=None,
    help="Lake root: a folder or s3://bucket/prefix (default: $DCCD_DATA_PATH, else ./data).",
)


def parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """THE parsing of every time option: ISO date/datetime or ns -> ns (``to_ns``); a
    bad or out-of-range value is a usage error naming the option."""
    if value is None:
        return None
    try:
        return to_ns(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


SPAN = click.option("--span", default=None, help="Candle span (ohlc only), e.g. 1m, 1h, 1d.")
START = click.option(
    "--start", callback=parse_time, default=None, help="Inclusive start: ISO date/datetime or ns."
)
END = click.option(
    "--end", callback=parse_time, default=None, help="Exclusive end: ISO date/datetime or ns."
)


def dataset_arguments(command: Callable[..., Any]) -> Callable[..., Any]:
    """``EXCHANGE SYMBOL DATA_TYPE [--span]``: the dataset a verb works on."""
    for decorate in (SPAN, click.argument("data_type"), click.argument("symbol"),
                     click.argument("exchange")):
        command = decorate(command)
    return command


@click.group(cls=_DccdGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """dccd: crypto market data in a Parquet lake."""


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``dccd``); exits 2 on any user error, with one line."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="dccd")
