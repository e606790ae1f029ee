"""The verbs of dccd: what a notebook, the CLI and the Dagster assets call."""

from .reading import inventory, read
from .stream import FlushReport, SymbolReport, stream

__all__ = ["FlushReport", "SymbolReport", "inventory", "read", "stream"]
