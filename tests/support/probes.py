"""What the probe tests share: a vhost they may take away and give back, the environment of a process, a probe."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx
import yaml

from .api import JOBS_FILE
from .environment import RABBITMQ_URL, ROOT, port_open, unavailable
from .processes import free_port, run_cli
from .rabbitmq import management, vhost


@contextmanager
def own_vhost(prefix: str) -> Iterator[str]:
    """A vhost of the test's own on the shared RabbitMQ (deleting it touches no one else)."""
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    if management("GET", "/overview") != 200:
        unavailable("RabbitMQ's management API on port 15672 (the test deletes and recreates a vhost)")
    with vhost(prefix) as url:
        if url is None:
            unavailable(f"a vhost of its own on RabbitMQ at {RABBITMQ_URL}")
        yield url


def vhost_path(url: str) -> str:
    """The management API path of ``url``'s vhost."""
    return "/vhosts/" + quote(unquote(urlsplit(url).path.lstrip("/")), safe="")


def delete_vhost(url: str) -> None:
    """Take RabbitMQ away from every client of ``url``: the vhost goes, its connections are closed."""
    assert management("DELETE", vhost_path(url)) in (200, 204)


def recreate_vhost(url: str, env: dict[str, str]) -> None:
    """Give it back as an operator would: the vhost, the user's permissions, then ``broker-jobs setup`` (queues)."""
    name = vhost_path(url).removeprefix("/vhosts/")
    user = urlsplit(url).username or "guest"
    assert management("PUT", f"/vhosts/{name}") in (201, 204)
    assert management("PUT", f"/permissions/{name}/{user}",
                      json={"configure": ".*", "write": ".*", "read": ".*"}) in (201, 204)
    done = run_cli("setup", env=env)
    assert done.returncode == 0, done.stderr


def process_env(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    """Environment of a worker or scheduler: its vhost, a SQLite store, a metrics port and directory of its own."""
    jobs = tmp / "jobs.yaml"
    jobs.write_text(JOBS_FILE, encoding="utf-8")
    return {"RABBITMQ_URL": url, "DATABASE_URL": f"sqlite:///{tmp}/jobs.sqlite3", "JOBS_CONFIG": str(jobs),
            "METRICS_PORT": str(free_port()), "METRICS_DIR": str(tmp / "metrics"), "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO", **extra}


def probe(env: dict[str, str], path: str) -> httpx.Response:
    """``GET path`` on the process's metrics port."""
    return httpx.get(f"http://127.0.0.1:{env['METRICS_PORT']}{path}", timeout=5)


def status(env: dict[str, str], path: str) -> int:
    """The probe's status code (0 while nothing answers)."""
    try:
        return probe(env, path).status_code
    except httpx.HTTPError:
        return 0


def compose_check(service: str, env: dict[str, str]) -> int:
    """Run ``service``'s health check from docker-compose.yml against the process of ``env``; its exit code.

    The check is run as written, with only the port swapped for the test's own.
    """
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kind, program, *args = compose["services"][service]["healthcheck"]["test"]
    assert kind == "CMD" and program == "python"
    args = [a.replace("127.0.0.1:9191", f"127.0.0.1:{env['METRICS_PORT']}") for a in args]
    return subprocess.run([sys.executable, *args], capture_output=True, timeout=30).returncode
