"""Reading the catalog file: which file, its YAML (dates kept as text, duplicate keys
refused), and problems as one self-contained line each."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from dccd_core.domain import CatalogError

from .problems import format_problems, problem_lines
from .shape import DEFAULT_CONFIG_PATH
from .specs import Catalog
from .validation import CronCheck, five_field_cron, parse_catalog

__all__ = ["catalog_path", "load_catalog", "read_yaml"]

def catalog_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The catalog file to read: ``path``, else ``$DCCD_CONFIG``, else ``./dccd.yaml``."""
    chosen = path if path is not None else os.environ.get("DCCD_CONFIG") or DEFAULT_CONFIG_PATH
    return Path(chosen).expanduser().resolve()


def load_catalog(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    today: date | None = None,
    cron_check: CronCheck = five_field_cron,
) -> Catalog:
    """Read and validate the catalog (see the package docstring for the sources of ``path``).

    ``env`` (default ``os.environ``) and ``today`` (default: the UTC date) exist for tests;
    ``cron_check`` judges ``update:`` crons (the Dagster project passes Dagster's own).
    """
    file = catalog_path(path)
    if not file.is_file():
        raise CatalogError(
            f"catalog {file} not found: create it (see dccd.yaml at the project root) "
            "or point DCCD_CONFIG at your catalog"
        )
    return parse_catalog(
        read_yaml(file), path=file, env=env, today=today, cron_check=cron_check
    )


class _CatalogLoader(yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader, but dates stay text: ``start: 2024-02-30`` then reaches
    the model (which names the key) instead of failing inside the YAML library."""


_CatalogLoader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),
)


def read_yaml(file: Path) -> Any:
    """The YAML document of ``file``; ``CatalogError`` (file, line, key, fix) for bytes
    that are not UTF-8, broken YAML, or a key written twice in one mapping."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CatalogError(
            f"catalog {file} cannot be read ({exc.strerror or exc}): fix its permissions"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        shown = data[start : end if end >= 0 else len(data)].decode("utf-8", "backslashreplace")
        raise CatalogError(
            f"{file}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} in "
            f"{shown.strip()!r}): save the catalog as UTF-8"
        ) from None
    loader = _CatalogLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = _duplicate_keys(node, "", set())
        if duplicates:
            raise CatalogError(format_problems(file, duplicates), problem_lines(file, duplicates))
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        message = " ".join(str(exc).split())
        raise CatalogError(f"{file}: invalid YAML{where}: fix the syntax ({message})") from None
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node, path: str, seen: set[int]) -> list[str]:
    """Every key written twice in one mapping, at any depth, with its key path."""
    if id(node) in seen:  # an alias of a node already walked (or a recursive one)
        return []
    seen.add(id(node))
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *defaults``: overriding merged keys is the point
            child = path
            if isinstance(key_node, yaml.ScalarNode):
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                line = key_node.start_mark.line + 1
                if key in first_line:
                    lines = f"line {line}" if first_line[key] == line else (
                        f"lines {first_line[key]} and {line}"
                    )
                    found.append(
                        f"{child}: written twice ({lines}); keep one: YAML would silently "
                        "use the last"
                    )
                else:
                    first_line[key] = line
            found += _duplicate_keys(value_node, child, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, f"{path}[{i}]", seen)
    return found
