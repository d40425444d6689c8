"""A real ``broker-jobs serve`` and a real ``dramatiq`` worker on a private vhost and database.

The API's constants and tokens (SECRET, JOBS_FILE, UNREACHABLE, token, bearer) live in :mod:`tests.support.api`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    JOBS_FILE,
    RABBITMQ_URL,
    SECRET,
    UNREACHABLE,
    free_port,
    port_open,
    start,
    stop,
    unavailable,
    vhost,
    wait_for,
    wait_for_log,
)


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    """A RabbitMQ vhost of this module's own (queue depths are asserted exactly)."""
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-api") as url:
        if url is None:
            unavailable(f"a vhost of its own on RabbitMQ at {RABBITMQ_URL} (management API or rabbitmqctl)")
        yield url


@pytest.fixture(scope="module")
def service_env(vhost_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of the processes under test: private vhost, database, ports and metrics directory."""
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "jobs.yaml").write_text(JOBS_FILE, encoding="utf-8")
    return {
        "RABBITMQ_URL": vhost_url,
        "DATABASE_URL": f"sqlite:///{tmp}/jobs.sqlite3",
        "API_JWT_SECRET": SECRET,
        "API_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "METRICS_DIR": str(tmp / "prometheus"),
        "JOBS_CONFIG": str(tmp / "jobs.yaml"),
        "RETRY_MIN_BACKOFF": "0.05",
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "INFO",
    }


def server_log(service_env: dict[str, str]) -> Path:
    """Where the ``server`` fixture's process writes its output."""
    return Path(service_env["METRICS_DIR"]).parent / "serve.log"


@pytest.fixture(scope="module")
def server(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``broker-jobs serve`` on a free port; yields its base URL (its output goes to :func:`server_log`)."""
    log = server_log(service_env)
    proc = start(["-m", "broker_jobs", "serve", "--port", service_env["API_PORT"], "--print-token"], service_env, log)
    base = f"http://127.0.0.1:{service_env['API_PORT']}"
    try:
        wait_for(lambda: proc.poll() is None and httpx.get(base + "/health/live", timeout=1).status_code == 200,
                 f"serve answering (log: {log})", timeout=30, every=0.1, ignore=UNREACHABLE)
        yield base
    finally:
        stop(proc, timeout=20)


@pytest.fixture(scope="module")
def worker(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``dramatiq broker_jobs.actors`` (1 process, 2 threads); yields its log file."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2"], service_env, log)
    try:
        wait_for_log(log, "ready for action", proc, timeout=30)
        yield log
    finally:
        stop(proc, timeout=20)


#: Debian's Chromium (the browser tests never download one).
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright (skips locally, fails in CI, when either is missing)."""
    if not shutil.which(CHROMIUM):
        unavailable(f"Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package (pip install -e '.[dev]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()
