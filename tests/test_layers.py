"""Imports point one way: cli -> pipelines -> operations/catalog -> sources/storage ->
transport -> domain (issue #16). A module may import its own layer or a lower one;
an upward import (or a circle between packages) is how a refactor quietly rots."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: package prefix -> rank; a module may import only what ranks the same or lower
LAYERS: dict[str, int] = {
    "dccd_core.domain": 0,
    "dccd_core.transport": 1,
    "dccd_core.sources": 2,
    "dccd_core.storage": 2,
    "dccd_core.operations": 3,
    "dccd_core.catalog": 3,
    "dccd_core": 3,  # the package facade (read, backfill, ...) re-exports operations
    "dccd_pipelines": 4,
    "dccd_cli": 5,
}


def _layer(module: str) -> str | None:
    best = None
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return best


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
    return found


def _modules() -> list[tuple[Path, str]]:
    out = []
    for package in ("dccd_core", "dccd_pipelines", "dccd_cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            out.append((path, _module_name(path)))
    return out


def test_imports_point_down_the_layers() -> None:
    upward = []
    for path, module in _modules():
        own = _layer(module)
        assert own is not None, module
        for target in _imports(path, module):
            layer = _layer(target)
            if layer is not None and LAYERS[layer] > LAYERS[own]:
                upward.append(f"{module} imports {target}")
    assert not upward, "\n".join(upward)


def test_the_core_never_imports_dagster() -> None:
    offenders = [
        f"{module} imports {target}"
        for path, module in _modules()
        if module.startswith("dccd_core")
        for target in _imports(path, module)
        if target.split(".")[0] == "dagster"
    ]
    assert not offenders, "\n".join(offenders)


def test_no_import_circles_between_modules() -> None:
    """Module-level cycles (lazy imports inside functions count too: a circle is a
    circle, even when Python happens to tolerate it)."""
    graph: dict[str, set[str]] = {}
    names = {module for _, module in _modules()}
    for path, module in _modules():
        graph[module] = {
            target for target in _imports(path, module) if target in names and target != module
        }
    # a package __init__ re-exporting its own submodules is not a circle
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not t.startswith(module + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)
