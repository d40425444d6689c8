"""Fixtures for the deploy files: scratch RabbitMQ vhosts and users, and the tools that check files.

A tool the deploy tests need (docker compose, shellcheck, kubernetes-validate) comes
with the project's dev extras; when one is missing the test skips locally and fails
under CI, like a missing service.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from tests.support import RABBITMQ_URL, ROOT, free_port, port_open, unavailable

VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The path of command ``name`` (the virtualenv's first), or skip/fail when it is missing."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        unavailable(f"the command {name!r} (installed by `make test`)")
    return str(found)


class Management:
    """A small client for RabbitMQ's management API, with the admin credentials of ``RABBITMQ_URL``."""

    def __init__(self) -> None:
        parts = urlsplit(RABBITMQ_URL)
        self.host = parts.hostname or "127.0.0.1"
        self.client = httpx.Client(base_url=f"http://{self.host}:15672/api",
                                   auth=(parts.username or "guest", parts.password or "guest"), timeout=15)

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """Send one request; raise on a 4xx/5xx answer."""
        response = self.client.request(method, path, **kwargs)  # type: ignore[arg-type]
        response.raise_for_status()
        return response

    def amqp_url(self, vhost: str, user: str | None = None, password: str | None = None) -> str:
        """An AMQP URL for ``vhost`` (as ``user`` if given, else as the admin)."""
        parts = urlsplit(RABBITMQ_URL)
        netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5672}" if user else parts.netloc
        return urlunsplit(parts._replace(netloc=netloc, path="/" + quote(vhost, safe="")))


@pytest.fixture(scope="session")
def management() -> Iterator[Management]:
    """The management API of the test RabbitMQ (skips locally, fails in CI, when it is missing)."""
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    api = Management()
    try:
        api.request("GET", "/overview")
    except httpx.HTTPError as exc:
        unavailable(f"RabbitMQ's management API on {api.host}:15672 ({exc})")
    yield api
    api.client.close()


@pytest.fixture
def scratch(management: Management) -> Iterator[Callable[[str], str]]:
    """A factory of unique names; every vhost and user so named is deleted after the test.

    Only vhosts and users this fixture named are ever deleted: the default vhost and
    everybody else's state stay untouched.
    """
    names: list[str] = []

    def name(prefix: str) -> str:
        made = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        names.append(made)
        return made

    yield name
    for made in names:
        for path in (f"/vhosts/{quote(made, safe='')}", f"/users/{quote(made, safe='')}"):
            try:
                management.client.delete(path)
            except httpx.HTTPError:
                pass


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a worker or CLI subprocess: a private SQLite history and metrics port, no Redis."""
    # A metrics port of its own: other tests' workers use the default.
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3", "PYTHONUNBUFFERED": "1",
            "JOBS_CONFIG": str(ROOT / "config" / "jobs.yaml"), "METRICS_PORT": str(free_port()),
            "METRICS_DIR": str(tmp_path / "metrics")}
