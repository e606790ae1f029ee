"""A real S3-compatible server on loopback for the object-store tests: moto's server
mode (``moto_server``, from ``pip install 'moto[server]'``) run as a subprocess.

It speaks the S3 REST protocol over HTTP, conditional PUTs (``If-None-Match: *``,
``If-Match``) included, so the client library under test (obstore, polars) is the
real one end to end; nothing in-process is mocked. When moto is not installed the
tests that need it skip, saying how to get it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dccd_core.storage.objectstore import ObjectStoreOptions

__all__ = ["S3Server", "moto_server_command", "running_s3_server"]

_REGION = "us-east-1"
_KEY = "dccd-test-key"
_SECRET = "dccd-test-secret"  # moto accepts any credentials


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint and a way to make an empty bucket."""

    endpoint: str

    def options(self, **overrides: object) -> ObjectStoreOptions:
        """Explicit options for this server (what the catalog's ``store:`` gives)."""
        fields: dict[str, object] = {
            "endpoint_url": self.endpoint,
            "region": _REGION,
            "access_key_id": _KEY,
            "secret_access_key": _SECRET,
            **overrides,
        }
        return ObjectStoreOptions(**fields)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """The standard AWS variables pointing at this server (for child processes)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": _REGION,
            "AWS_ACCESS_KEY_ID": _KEY,
            "AWS_SECRET_ACCESS_KEY": _SECRET,
        }

    def storage_options(self) -> dict[str, str]:
        """polars' ``storage_options`` for this server, as a user would write them."""
        return self.options().storage_options()

    def new_bucket(self) -> str:
        """Create an empty bucket with a fresh name; returns the name."""
        name = f"lake-{secrets.token_hex(4)}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        return name


def moto_server_command() -> list[str] | None:
    """How to start moto's server here, or None when moto[server] is not installed."""
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    try:
        import flask  # noqa: F401  (moto's server mode needs it: moto[server])
        import moto  # noqa: F401
    except ImportError:
        return None
    return [found] if found else [sys.executable, "-m", "moto.server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on a free loopback port; stop it on exit."""
    command = moto_server_command()
    if command is None:
        pytest.skip("no S3-compatible server: pip install 'moto[server]' (the dev extra)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # The server logs every request: to a file, never to a pipe nobody drains (a full
    # pipe would block the server after a few hundred requests).
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed after the server stops
    process = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"moto_server exited at start: {log.read()[-2000:].decode()}")
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not answer within 30 s")
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
