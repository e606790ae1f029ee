"""Run one python block of the docs like a notebook cell, and say what it made.

Usage (by the docs test, with the project's interpreter)::

    python doc_program.py BLOCK.py SUMMARY.json

The block runs as ``__main__``; if its last statement is an expression (a notebook
shows it, e.g. ``...collect()``), its value is printed, as a notebook would show it.
Then the row count of every table the program left in a top-level name (polars or
pandas frames; ``_`` for the last expression's value) goes to ``SUMMARY.json``, so the
test can compare what the documented program read with what the lake holds.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_program"]


def _rows(value: Any) -> int | None:
    module = type(value).__module__
    if module.startswith(("polars", "pandas")) and hasattr(value, "shape"):
        try:
            return int(value.shape[0])
        except (TypeError, ValueError, IndexError):
            return None
    return None


def run_program(path: Path) -> dict[str, int]:
    """Execute ``path``; return ``{name: rows}`` of the tables it left behind."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    body = tree.body[:-1] if last is not None else tree.body
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(path)}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(body=last.value), str(path), "eval"), namespace)
        if value is not None:
            print(value)
        namespace["_"] = value
    tables: dict[str, int] = {}
    for name, value in namespace.items():
        rows = _rows(value)
        if rows is not None and not name.startswith("__"):
            tables[name] = rows
    return tables


if __name__ == "__main__":
    block, summary = Path(sys.argv[1]), Path(sys.argv[2])
    summary.write_text(json.dumps(run_program(block)), encoding="utf-8")
