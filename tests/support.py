"""What tests in every folder share: polling, our commands as subprocesses, free ports, vhosts and databases
of their own on the shared services, queue depths.

Nothing here imports broker_jobs at import time: tests/conftest.py imports this module before it
points broker_jobs' settings at the test environment.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
#: The shared RabbitMQ; tests work on vhosts of their own (:func:`vhost`).
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

#: The test process's own Prometheus set-up (broker_jobs writes it into ``os.environ``): never handed
#: down, a command started by a test takes its metrics directory and port from METRICS_DIR / METRICS_PORT.
_PROCESS_METRICS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir", "dramatiq_prom_db", "dramatiq_prom_port",
                    "dramatiq_prom_host")


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60, every: float = 0.3,
             ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll ``predicate`` until it returns something true, and return that.

    Parameters:
      predicate: Called every ``every`` seconds.
      what: What is awaited, named in the failure.
      timeout: Seconds before failing.
      every: Seconds between two calls.
      ignore: Exceptions that mean "not yet" (a server still starting) rather than a failure.

    Raises:
      AssertionError: after ``timeout`` s, naming ``what`` and the last answer.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    detail = "" if last is None or last is False else f" (last: {last!r})"
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    [port] = free_ports(1)
    return port


def start(args: Sequence[str], env: dict[str, str], log: Path, *,
          prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start ``python ARGS`` (``-m dramatiq ...``, ``-m broker_jobs ...``) in a session of its own, from the repo.

    Parameters:
      args: The arguments after ``python``.
      env: Environment on top of this process's.
      log: File its output (stdout and stderr) is appended to.
      prefix: Words before ``python``, e.g. ``ip netns exec NS`` (which execs it: same pid).
    """
    inherited = {k: v for k, v in os.environ.items() if k not in _PROCESS_METRICS}
    with log.open("ab") as out:
        return subprocess.Popen([*prefix, sys.executable, *args], env={**inherited, **env}, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group of a command started in a session of its own: no cleanup, no acks."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> int:
    """SIGTERM the process group of a command started in a session of its own; SIGKILL it after ``timeout`` s.

    Returns:
      Its exit code.
    """
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
    return proc.returncode


def log_text(log: Path) -> str:
    """Everything written to ``log`` so far (nothing before the file exists)."""
    return log.read_text(errors="replace") if log.exists() else ""


def wait_for_log(log: Path, pattern: str, proc: subprocess.Popen[Any] | None = None, *, count: int = 1,
                 timeout: float = 60) -> None:
    """Wait until ``pattern`` (a regex) occurs ``count`` times in ``log``.

    Fails with the end of the log after ``timeout`` s, or at once when ``proc``
    (the command writing the log) exits first.
    """
    def seen() -> bool:
        return len(re.findall(pattern, log_text(log))) >= count

    try:
        wait_for(lambda: seen() or (proc is not None and proc.poll() is not None), f"{pattern!r} in {log.name}",
                 timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{log_text(log)[-3000:]}") from None
    if not seen():
        assert proc is not None
        raise AssertionError(f"{log.name}: the command exited ({proc.returncode}) before {pattern!r}:\n"
                             f"{log_text(log)[-3000:]}")


class Process:
    """A command of ours (``python -m ...``) in a session of its own, logging to a file.

    Parameters:
      args: The arguments after ``python``.
      env: Extra environment.
      log: File receiving its output.
    """

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start the command."""
        self.proc = start(self.args, self.env, self.log)
        return self

    def alive(self) -> bool:
        """Whether the command still runs."""
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, pattern: str, timeout: float = 60, count: int = 1) -> None:
        """Wait until ``pattern`` (a regex) occurs ``count`` times in the log; fail if the command exits first."""
        wait_for_log(self.log, pattern, self.proc, count=count, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no acks, no lease release."""
        if self.proc is not None:
            kill(self.proc)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout`` s; returns the exit code (None if never started)."""
        return stop(self.proc, timeout) if self.proc is not None else None

    def text(self) -> str:
        """Everything the command logged so far."""
        return log_text(self.log)


def management(method: str, path: str, **kwargs: Any) -> int:
    """One call to the shared RabbitMQ's management API as ``RABBITMQ_URL``'s user: the status, 0 if unreachable."""
    import httpx

    parts = urlsplit(RABBITMQ_URL)
    try:
        return httpx.request(method, f"http://{parts.hostname}:15672/api{path}", timeout=5,
                             auth=(parts.username or "guest", parts.password or "guest"), **kwargs).status_code
    except httpx.HTTPError:
        return 0


def _rabbitmqctl(*args: str) -> bool:
    try:
        return subprocess.run(["rabbitmqctl", *args], capture_output=True).returncode == 0
    except OSError:
        return False


@contextmanager
def vhost(prefix: str) -> Iterator[str | None]:
    """A vhost of its own on the shared RabbitMQ (management API, else ``rabbitmqctl``), deleted afterwards.

    Yields its AMQP URL (``RABBITMQ_URL``'s user may do anything on it), or None when it could not be made.
    """
    name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    quoted = quote(name, safe="")
    user = urlsplit(RABBITMQ_URL).username or "guest"
    created = management("PUT", f"/vhosts/{quoted}") in (201, 204)
    if created:
        management("PUT", f"/permissions/{quoted}/{user}", json={"configure": ".*", "write": ".*", "read": ".*"})
    elif _rabbitmqctl("add_vhost", name):
        created = True
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    if not created:
        yield None
        return
    try:
        yield urlunsplit(urlsplit(RABBITMQ_URL)._replace(path="/" + quoted))
    finally:
        if management("DELETE", f"/vhosts/{quoted}") not in (200, 204):
            _rabbitmqctl("delete_vhost", name)


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue``, exactly and now (a passive declare, not the lagging management API); 0 when
    the queue does not exist."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        try:
            return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker:
            return 0
    finally:
        if connection.is_open:
            connection.close()


@contextmanager
def database(admin_url: str, prefix: str, ddl: str = "") -> Iterator[str]:
    """A fresh database on the PostgreSQL server of ``admin_url`` (``ddl`` run in it), dropped afterwards.

    The caller may lock its tables or refuse connections to it; the server and
    every other database stay untouched.
    """
    import sqlalchemy

    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
    if ddl:
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl)
        engine.dispose()
    try:
        yield url
    finally:
        from broker_jobs.store.db import reset_engines

        reset_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
