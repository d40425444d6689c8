"""A real ``broker-jobs serve`` and a real ``dramatiq`` worker on a private vhost and database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import RABBITMQ_URL, ROOT, port_open, unavailable

SECRET = "test-secret-" + "x" * 40

#: One schedule that never fires by itself during a test (the first minute of a rare day).
JOBS_FILE = """\
jobs:
  - id: nightly-diagnostics
    actor: diagnostics
    cron: "0 3 29 2 *"
    priority: high
"""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _management(method: str, path: str, **kwargs: Any) -> int:
    parts = urlsplit(RABBITMQ_URL)
    try:
        return httpx.request(method, f"http://{parts.hostname}:15672/api{path}", timeout=5,
                             auth=(parts.username or "guest", parts.password or "guest"), **kwargs).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    """A RabbitMQ vhost of this module's own (queue depths are asserted exactly)."""
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    vhost = f"bj-api-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    user = urlsplit(RABBITMQ_URL).username or "guest"
    if _management("PUT", f"/vhosts/{quote(vhost, safe='')}") not in (201, 204):
        unavailable("the RabbitMQ management API")
    _management("PUT", f"/permissions/{quote(vhost, safe='')}/{user}",
                json={"configure": ".*", "write": ".*", "read": ".*"})
    yield urlunsplit(urlsplit(RABBITMQ_URL)._replace(path="/" + quote(vhost, safe="")))
    _management("DELETE", f"/vhosts/{quote(vhost, safe='')}")


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


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a process in its own session, output to ``log``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir",
                                                                "dramatiq_prom_db", "dramatiq_prom_port",
                                                                "dramatiq_prom_host")}
    with open(log, "wb") as out:
        return subprocess.Popen(args, env={**clean, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started by :func:`spawn` (its whole group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


def server_log(service_env: dict[str, str]) -> Path:
    """Where the ``server`` fixture's process writes its output."""
    return Path(service_env["METRICS_DIR"]).parent / "serve.log"


@pytest.fixture(scope="module")
def server(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``broker-jobs serve`` on a free port; yields its base URL (its output goes to :func:`server_log`)."""
    log = server_log(service_env)
    proc = spawn([sys.executable, "-m", "broker_jobs", "serve", "--port", service_env["API_PORT"]],
                 service_env, log)
    base = f"http://127.0.0.1:{service_env['API_PORT']}"
    try:
        wait_until(lambda: proc.poll() is None and httpx.get(base + "/health/live", timeout=1).status_code == 200,
                   what=f"serve answering (log: {log})")
        yield base
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def worker(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``dramatiq broker_jobs.actors`` (1 process, 2 threads); yields its log file."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = spawn([sys.executable, "-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2"],
                 service_env, log)
    try:
        wait_until(lambda: proc.poll() is None and "ready for action" in log.read_text(errors="replace"),
                   what=f"worker ready (log: {log})")
        yield log
    finally:
        stop(proc)


def token(scope: str, ttl: float = 600, secret: str = SECRET) -> str:
    """A bearer token minted the way ``broker-jobs token`` does."""
    from broker_jobs.api.auth import mint_token

    return mint_token(secret, scope, ttl=ttl)


def bearer(scope: str) -> dict[str, str]:
    """Authorization header for ``scope``."""
    return {"Authorization": f"Bearer {token(scope)}"}
