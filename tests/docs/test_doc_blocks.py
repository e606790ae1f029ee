"""How the docs test reads commands out of the docs, and how it rewrites them to run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.docs.doc_blocks import REPO, Block, bash_commands, doc_blocks, strip_comment
from tests.docs.doc_project import BIN, rewrite_command
from tests.docs.readme_env import ReadmeCheckout, clean_env, setup_part

PAGE = """# Title

```bash
dccd inventory                      # every dataset
dagster asset materialize -m mod \\
  --select a/b/c
echo "a # inside quotes" 'and # here'   # a comment

# a comment line
```

```yaml
store: {root: ./data}
```

````python
print("```")
````

```
plain fence
```
"""


def test_blocks_keep_their_language_and_place() -> None:
    blocks = doc_blocks("page.md", PAGE)
    assert [(b.lang, b.line) for b in blocks] == [
        ("bash", 3),
        ("yaml", 12),
        ("python", 16),
        ("", 20),
    ]
    assert blocks[2].text == 'print("```")\n'


def test_bash_lines_join_continuations_and_drop_comments() -> None:
    block = doc_blocks("page.md", PAGE)[0]
    assert bash_commands(block) == [
        "dccd inventory",
        "dagster asset materialize -m mod   --select a/b/c",
        "echo \"a # inside quotes\" 'and # here'",
    ]


def test_strip_comment_needs_a_word_start() -> None:
    assert strip_comment("echo a#b  # c") == "echo a#b"
    assert strip_comment("echo 'x' \\# y") == "echo 'x' \\# y"


def test_rewrite_uses_this_venv() -> None:
    venv = Path("/v/bin")
    assert rewrite_command(".venv/bin/dccd read x", venv) == "/v/bin/dccd read x"
    assert (
        rewrite_command("dccd import-v3 ~/dccd_data", venv) == "/v/bin/dccd import-v3 ~/dccd_data"
    )
    assert (
        rewrite_command('X="$PWD/h" dagster dev -w workspace.yaml', venv)
        == 'X="$PWD/h" /v/bin/dagster dev -w workspace.yaml'
    )
    assert rewrite_command("dccd read a || echo dccd", venv) == "/v/bin/dccd read a || echo dccd"
    # names inside arguments stay: dccd.yaml, dccd_pipelines, dagster/partition
    line = "dagster job launch -m dccd_pipelines.definitions --tags '{\"dagster/partition\": 1}'"
    assert rewrite_command(line, venv) == "/v/bin/" + line
    assert rewrite_command("dccd validate dccd.yaml", BIN).endswith(" validate dccd.yaml")


def test_only_bash_and_python_blocks_run() -> None:
    langs = {b.lang for doc in ("README.md", "docs/deployment.md") for b in doc_blocks(doc)}
    assert {"bash", "python", "ini", "yaml"} <= langs
    assert isinstance(doc_blocks("README.md")[0], Block)


def test_the_generator_named_in_exchanges_md_prints_it(readme_checkout: ReadmeCheckout) -> None:
    """docs/exchanges.md names its generator inline; running it after the README's
    set-up reproduces the page."""
    page = (REPO / "docs" / "exchanges.md").read_text()
    assert "`python -m dccd_core.sources.capability_table`" in page
    out = subprocess.run(
        [str(readme_checkout.bin / "python"), "-m", "dccd_core.sources.capability_table"],
        capture_output=True,
        text=True,
        check=True,
        cwd=readme_checkout.root,
        env=clean_env(),
    ).stdout
    assert out == page


def test_setup_part_is_the_venv_and_the_install() -> None:
    main = (
        "python3 -m venv .venv && .venv/bin/pip install -e . && mkdir -p .h && "
        "DAGSTER_HOME=x .venv/bin/dagster dev -w workspace.yaml"
    )
    assert setup_part(main) == "python3 -m venv .venv && .venv/bin/pip install -e ."
