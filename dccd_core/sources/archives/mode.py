"""``archives: auto | off | only``: how a backfill uses an exchange's bulk files.

Its own module so the catalog, the CLI and the backfill share one spelling and one
message for a wrong value (the catalog may import ``sources``, not ``operations``).
"""

from __future__ import annotations

from enum import StrEnum

from dccd_core.domain import ConfigError

__all__ = ["ArchiveMode", "parse_archive_mode"]


class ArchiveMode(StrEnum):
    """``auto``: archive files first, REST for the recent tail and for any file that
    cannot be had or trusted; ``off``: REST only; ``only``: archive files only, a file
    that cannot be used leaves its window uncovered (a hole the checks report)."""

    AUTO = "auto"
    OFF = "off"
    ONLY = "only"


def parse_archive_mode(value: str | ArchiveMode) -> ArchiveMode:
    """``"auto"``/``"off"``/``"only"`` (any case) -> ``ArchiveMode``; else a ConfigError."""
    if isinstance(value, ArchiveMode):
        return value
    text = str(value).strip().lower()
    try:
        return ArchiveMode(text)
    except ValueError:
        raise ConfigError(
            f"archives {value!r} is not a mode: use auto (archive files, then REST), "
            "off (REST only) or only (archive files only)"
        ) from None
