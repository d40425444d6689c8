"""Where the tests run: the repository, the shared services' URLs, whether a service is there (skip locally,
fail in CI when not), and what a started command must not inherit."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
#: The shared RabbitMQ; tests work on vhosts of their own (:func:`tests.support.rabbitmq.vhost`).
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# `make test` runs two pytest workers (xdist): each flushes a Redis database of its own.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - 2 * _WORKER}")
TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = bool(os.environ.get("CI"))

#: The test process's own Prometheus set-up (broker_jobs writes it into ``os.environ``): never handed
#: down, a command started by a test takes its metrics directory and port from METRICS_DIR / METRICS_PORT.
PROCESS_METRICS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir", "dramatiq_prom_db", "dramatiq_prom_port",
                   "dramatiq_prom_host")


def unavailable(what: str) -> None:
    """Skip locally, fail in CI, when a real service is missing."""
    message = f"{what} is not reachable; `make test` installs and starts it"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def port_open(url: str, default_port: int) -> bool:
    """Whether something listens at ``url``'s host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False
