"""What every benchmark shares: the run's private vhost and Redis keys, processes, waiting.

A run gets a RabbitMQ vhost of its own (created through the management API,
deleted at the end) and a Redis key prefix in db 14, so it never touches
anybody else's queues or keys.  Every child process starts in a session of
its own and is stopped by its process group, with a hard deadline.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent

RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MANAGEMENT_URL = os.environ.get("BENCH_MANAGEMENT_URL", "http://127.0.0.1:15672")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


class BenchError(RuntimeError):
    """A benchmark step that could not run (service missing, peer timed out)."""


def _auth() -> tuple[str, str]:
    parts = urlsplit(RABBITMQ_URL)
    return parts.username or "guest", parts.password or "guest"


def management(method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Call RabbitMQ's management API (``/api`` + ``path``)."""
    return httpx.request(method, f"{MANAGEMENT_URL}/api{path}", auth=_auth(), timeout=10, **kwargs)


@dataclass
class Run:
    """One benchmark run: its id, private vhost, Redis prefix and scratch directory."""

    run_id: str
    amqp_url: str
    vhost: str
    redis_url: str = REDIS_URL
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bj-bench-")))

    def key(self, *parts: str) -> str:
        """A Redis key of this run: ``bjbench:<run>:<parts>``."""
        return ":".join(("bjbench", self.run_id, *parts))

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every child process: this run's broker, Redis and scratch files."""
        env = dict(os.environ)
        env.pop("REDIS_URL", None)  # single-host mode, as a fresh deploy
        env.update(
            BENCH_AMQP_URL=self.amqp_url,
            BENCH_REDIS_URL=self.redis_url,
            RABBITMQ_URL=self.amqp_url,
            DATABASE_URL=f"sqlite:///{self.workdir}/history.sqlite3",
            METRICS_PORT=str(free_port()),
            METRICS_DIR=str(self.workdir / "metrics"),
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "metrics"),
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
            PYTHONUNBUFFERED="1",
        )
        (self.workdir / "metrics").mkdir(exist_ok=True)
        env.update(extra)
        return env


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_run() -> Iterator[Run]:
    """Create the run's vhost (guest granted), yield the :class:`Run`, then delete vhost and keys."""
    run_id = time.strftime("%H%M%S") + "-" + uuid.uuid4().hex[:6]
    vhost = f"bj-bench-{run_id}"
    try:
        created = management("PUT", f"/vhosts/{quote(vhost, safe='')}")
    except httpx.HTTPError as exc:
        raise BenchError(f"RabbitMQ management API at {MANAGEMENT_URL} unreachable: {exc}") from None
    if created.status_code not in (201, 204):
        raise BenchError(f"cannot create vhost {vhost}: HTTP {created.status_code} {created.text[:200]}")
    user = _auth()[0]
    management("PUT", f"/permissions/{quote(vhost, safe='')}/{user}",
               json={"configure": ".*", "write": ".*", "read": ".*"})
    parts = urlsplit(RABBITMQ_URL)
    run = Run(run_id, urlunsplit(parts._replace(path="/" + quote(vhost, safe=""))), vhost)
    try:
        yield run
    finally:
        management("DELETE", f"/vhosts/{quote(vhost, safe='')}")
        _delete_keys(run)


def redis_client(url: str = REDIS_URL) -> Any:
    """A Redis client (decoded responses)."""
    import redis

    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def _delete_keys(run: Run) -> None:
    client = redis_client(run.redis_url)
    keys = list(client.scan_iter(match=run.key("*"), count=1000))
    if keys:
        client.delete(*keys)


# -- processes ---------------------------------------------------------------------------


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a session of its own, output to ``log``."""
    handle = log.open("ab")
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def run_json(cmd: list[str], env: dict[str, str], timeout: float, log: Path) -> dict[str, Any]:
    """Run a helper that prints one JSON object as its last line; its other output goes to ``log``."""
    proc = start_piped(cmd, env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        log.write_bytes(out + err)
        raise BenchError(f"{' '.join(cmd[-6:])} timed out after {timeout:.0f} s") from None
    with log.open("ab") as handle:
        handle.write(err)
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{cmd[2] if len(cmd) > 2 else cmd[0]} failed ({proc.returncode}): {' | '.join(tail)}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def start_piped(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout and stderr captured, in a session of its own."""
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def tree_rss(pid: int) -> tuple[int, int]:
    """(largest single-process RSS, total RSS) in bytes over ``pid`` and its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    sizes = []
    for proc in procs:
        try:
            sizes.append(proc.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
    return (max(sizes), sum(sizes)) if sizes else (0, 0)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


# -- the machine -------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """Cores, RAM, CPU model, load, RabbitMQ and library versions: the table's header."""
    from importlib.metadata import PackageNotFoundError, version

    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rabbit = management("GET", "/overview").json().get("rabbitmq_version", "?")
    except (httpx.HTTPError, ValueError):
        rabbit = "?"
    versions = []
    for dist in ("dramatiq", "pika", "celery", "periodiq", "apscheduler", "redis"):
        try:
            versions.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            versions.append(f"{dist} missing")
    load = os.getloadavg()
    return {
        "cpu": f"{os.cpu_count()} cores, {model}",
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "rabbitmq": str(rabbit),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "libraries": ", ".join(versions),
        "load": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min, at start)",
    }
