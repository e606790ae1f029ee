"""The README reader's environment, made once per test session (see ``readme_env.py``)."""

from __future__ import annotations

import pytest

from tests.docs.readme_env import ReadmeCheckout, make_readme_checkout


@pytest.fixture(scope="session")
def readme_checkout(tmp_path_factory: pytest.TempPathFactory) -> ReadmeCheckout:
    """A copy of the repository set up by the README's own command (~1 min, once)."""
    return make_readme_checkout(tmp_path_factory.mktemp("readme"))
