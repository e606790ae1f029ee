"""A real PostgreSQL for the distributed tests, started and stopped by the tests.

``pgserver`` (a dev dependency) ships the PostgreSQL binaries in its wheel, so the
README's test command gets a server on a fresh machine with only Python and PyPI. It
listens on a Unix socket in a temporary directory (no TCP port, nothing outside the
test). Only when the package or the server truly cannot be had are these tests skipped,
with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running PostgreSQL (``pgserver.PostgresServer``) for the whole session."""
    try:
        import pgserver
    except ImportError:
        pytest.skip(
            "the PostgreSQL tests need the embedded server package pgserver: "
            "pip install -e '.[dev]'"
        )
    pgdata = tmp_path_factory.mktemp("pg")
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # a platform without pgserver's binaries, a sandbox without shm
        pytest.skip(f"could not start the embedded PostgreSQL (pgserver) here: {exc}")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """The URL of a database of its own for one test (created empty)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f"CREATE DATABASE {name};")
    uri: str = postgres_server.get_uri(name)
    return uri
