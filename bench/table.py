"""The benchmark table: one ``Row`` per scenario, rendered as markdown.

Its own module so a saved run (``run_all --render <timestamp>.json``) is reprinted by
the same code that printed it, apart from the processes that measure.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Row", "machine", "render", "wall_text"]


@dataclass
class Row:
    """One line of the table: a scenario, its v4 figures and v3's (or why not)."""

    area: str
    scenario: str
    v4: dict[str, Any] | None = None
    v3: dict[str, Any] | str | None = None  # a str says why v3 has no figure
    notes: list[str] = field(default_factory=list)


def wall_text(s: Any) -> str:
    if not isinstance(s, int | float):
        return "—"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.1f} s"


def _num(x: Any) -> str:
    return f"{x:,.0f}" if isinstance(x, int | float) else "—"


def _rss(x: Any) -> str:
    return f"{x:,.0f} MB" if isinstance(x, int | float) and x else "—"


def _check(side: Any, label: str) -> str:
    if not isinstance(side, dict) or "check" not in side:
        return ""
    c = side["check"]
    if c["exact"]:
        return f"{label} exact ({c['stored']:,})"
    parts = [f"{c['stored']:,} stored / {c['expected']:,} expected"]
    for k in ("missing", "extra", "duplicated", "differing"):
        if c.get(k):
            parts.append(f"{c[k]:,} {k}")
    return f"**{label} " + ", ".join(parts) + "**"


def _cells(side: dict[str, Any] | str | None) -> list[str]:
    if side is None:
        return ["", "", "", ""]
    if isinstance(side, str):
        return [side, "", "", ""]
    if "error" in side:
        return [f"error: {side['error']}", "", "", _rss(side.get("peak_rss_mb"))]
    if "value" in side:
        return [str(side["value"]), "", "", ""]
    return [wall_text(side.get("wall_s")), _num(side.get("rows_per_s")),
            _num(side.get("requests")), _rss(side.get("peak_rss_mb"))]


def render(rows: list[Row], header: str, with_v3: bool) -> str:
    """The markdown table (and its notes)."""
    cols = ["scenario", "v4 wall", "v4 rows/s", "v4 req", "v4 peak RSS"]
    if with_v3:
        cols += ["v3 wall", "v3 rows/s", "v3 req", "v3 peak RSS", "v3/v4 wall"]
    cols += ["stored rows vs truth"]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    notes: list[str] = []
    for row in rows:
        cells = [row.scenario, *_cells(row.v4)]
        if with_v3:
            cells += _cells(row.v3)
            ratio = ""
            if (isinstance(row.v3, dict) and isinstance(row.v4, dict)
                    and isinstance(row.v3.get("wall_s"), int | float)
                    and row.v4.get("wall_s") and "error" not in row.v3):
                ratio = f"{row.v3['wall_s'] / row.v4['wall_s']:.2f}x"
            cells.append(ratio)
        checks = [c for c in (_check(row.v4, "v4"), _check(row.v3, "v3") if with_v3 else "")
                  if c]
        cells.append("; ".join(checks))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        notes += [f"- {row.scenario}: {n}" for n in row.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """The machine the table was measured on (cores, CPU model, RAM, Python)."""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GB RAM, Python {python}"
