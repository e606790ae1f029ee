"""Catalog problems as lines: each names the file, the key path and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

__all__ = ["format_problems", "problem_lines", "pydantic_problems"]


def pydantic_problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = _loc_path(err.get("loc", ()))
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key; check its spelling against dccd.yaml"
        elif err.get("type") == "missing":
            msg = "required key is missing; add it"
        elif err.get("type") == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return lines


def problem_lines(file: Path, problems: Sequence[str]) -> list[str]:
    """One self-contained line per problem: ``FILE: key.path: message; fix``."""
    return [f"{file}: {problem}" for problem in problems]


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "float", "date"):  # pydantic's union branch names
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def format_problems(file: Path, problems: Sequence[str]) -> str:
    if len(problems) == 1:
        return f"invalid catalog {file}: {problems[0]}"
    body = "\n".join(f"  - {p}" for p in problems)
    return f"invalid catalog {file}: {len(problems)} problems\n{body}"
