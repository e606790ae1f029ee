"""A real PostgreSQL for the distributed tests, started and stopped by the tests.

``pgserver`` (a dev dependency) ships the PostgreSQL binaries in its wheel, so the
README's test command gets a server on a fresh machine with only Python and PyPI. It
listens on a Unix socket in a temporary directory (no TCP port, nothing outside the
test). Only when the package or the server truly cannot be had are these tests skipped,
with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A running PostgreSQL (``pgserver.PostgresServer``) for the whole session.

    Its data directory is a fresh one under the system's temporary directory, not
    pytest's: run as root, pgserver runs postgres as an unprivileged user, which cannot
    enter pytest's private (0700) base directory."""
    try:
        import pgserver
    except ImportError:
        pytest.skip(
            "the PostgreSQL tests need the embedded server package pgserver: "
            "pip install -e '.[dev]'"
        )
    pgdata = tempfile.mkdtemp(prefix="dccd-pg-")
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # a platform without pgserver's binaries, a sandbox without shm
        shutil.rmtree(pgdata, ignore_errors=True)
        pytest.skip(f"could not start the embedded PostgreSQL (pgserver) here: {exc}")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """The URL of a database of its own for one test (created empty)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f"CREATE DATABASE {name};")
    uri: str = postgres_server.get_uri(name)
    return uri
