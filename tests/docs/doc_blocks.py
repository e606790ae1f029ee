"""The commands and programs of the docs, as the docs test and CI read them.

Issue 7: every command in the docs is run by a test or a CI step. A fenced block whose
info string is ``bash`` holds commands, one per line (a trailing ``\\`` joins the next
line; ``#`` comments and blank lines are dropped); a ``python`` block is one program.
Other fences (``yaml``, ``ini``, none) show configuration or layouts and are not run.

Standard library only, and runnable as a script, because ``.ci/run`` uses it with the
system ``python3`` before any virtualenv exists::

    python3 tests/docs/doc_blocks.py readme-test-command

prints the README's test command (its second ``bash`` block), which CI then runs, so
the command CI runs and the command the README shows cannot drift apart.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DOC_PATHS",
    "REPO",
    "Block",
    "bash_commands",
    "doc_blocks",
    "readme_main_command",
    "readme_test_command",
    "strip_comment",
]

REPO = Path(__file__).resolve().parents[2]

# The README first, then the docs in the README's reading order (quick start first:
# its materialize command fills the lake the later pages read).
DOC_PATHS: tuple[str, ...] = (
    "README.md",
    "docs/quickstart.md",
    "docs/catalog.md",
    "docs/reading.md",
    "docs/operating.md",
    "docs/deployment.md",
    "docs/exchanges.md",
    "docs/migrating-v3.md",
    "docs/verbs.md",  # last: its ensure/backfill add data the pages above do not expect
)

RUNNABLE = ("bash", "python")
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is (``doc``, 1-based ``line`` of its opening fence),
    its info string's first word (``lang``, "" for a plain fence) and its text."""

    doc: str
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def doc_blocks(doc: str, text: str | None = None) -> list[Block]:
    """Every fenced block of ``doc`` (a path relative to the repo), in document order."""
    if text is None:
        text = (REPO / doc).read_text(encoding="utf-8")
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            body.append(lines[j])
            j += 1
        blocks.append(Block(doc, i + 1, opening["info"].lower(), "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def strip_comment(line: str) -> str:
    """``line`` without its shell comment (a ``#`` starting a word, outside quotes)."""
    quote: str | None = None
    escaped = False
    for k, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k].rstrip()
    return line.rstrip()


def bash_commands(block: Block) -> list[str]:
    """The commands of a ``bash`` block: continuation lines joined, comments dropped."""
    commands: list[str] = []
    pending = ""
    for raw in block.text.splitlines():
        line = pending + raw
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        pending = ""
        command = strip_comment(line).strip()
        if command:
            commands.append(command)
    if pending.strip():
        commands.append(strip_comment(pending).strip())
    return commands


def _readme_bash_block(index: int) -> str:
    blocks = [b for b in doc_blocks("README.md") if b.lang == "bash"]
    if len(blocks) <= index:
        raise SystemExit(f"README.md has no bash block #{index + 1}")
    commands = bash_commands(blocks[index])
    if len(commands) != 1:
        raise SystemExit(
            f"README.md's bash block #{index + 1} ({blocks[index].where}) must hold exactly "
            f"one command, found {len(commands)}"
        )
    return commands[0]


def readme_main_command() -> str:
    """The README's first command: set up, then ``dagster dev`` on the example catalog."""
    return _readme_bash_block(0)


def readme_test_command() -> str:
    """The README's second command: set up, then run the test suite (what CI runs)."""
    return _readme_bash_block(1)


def _main(argv: list[str]) -> int:
    commands = {
        "readme-main-command": readme_main_command,
        "readme-test-command": readme_test_command,
    }
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: doc_blocks.py {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    print(commands[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
