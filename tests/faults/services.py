"""Private RabbitMQ, Redis and PostgreSQL for the fault tests, which they may break.

The shared services on 5672, 6379 and 5432 belong to every engineer testing at
the same time; a fault test stops, blocks and reconfigures only what it started
here.  A private RabbitMQ node runs from temporary directories with its own
node name, ports, Erlang cookie and configuration, so ``rabbitmqctl`` can only
ever address it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate, timeout: float, every: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class ServiceUnavailable(RuntimeError):
    """A private service could not be started on this machine."""


class PrivateRabbit:
    """A RabbitMQ node of our own: started, broken and stopped by the fault tests.

    Parameters:
      root: A directory for its database, logs, cookie and configuration.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = f"bjfault-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.home = root / "home"
        self.log = root / "log"
        self.process: subprocess.Popen[bytes] | None = None
        self.boot_seconds = 0.0
        self._changed: set[str] = set()  # what restore() must put back

    @property
    def url(self) -> str:
        """The AMQP URL of the node's default vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),  # the private Erlang cookie lives here
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = 60) -> None:
        """Boot the node and wait until it serves AMQP."""
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not os.access(server, os.X_OK):
            raise ServiceUnavailable(f"{server} not found (set RABBITMQ_BIN)")
        for sub in ("home", "log", "mnesia"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        (self.root / "rabbitmq-env.conf").write_text("")  # ignore /etc/rabbitmq/rabbitmq-env.conf
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = false\n"
            "max_message_size = 4194304\n"
        )
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(server)], env=self._env(), cwd=self.root, stdout=(self.log / "stdout.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        if not wait_until(lambda: listening(self.port) or self.process.poll() is not None, timeout):
            self.stop()
            raise ServiceUnavailable(f"private RabbitMQ did not listen within {timeout} s")
        if self.process.poll() is not None:
            raise ServiceUnavailable("private RabbitMQ exited: " + self.tail())
        self.boot_seconds = time.monotonic() - started

    def tail(self, lines: int = 20) -> str:
        """The last lines of the node's console output."""
        path = self.log / "stdout.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> ARGS`` and return its output."""
        result = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self._env(),
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}")
        return result.stdout

    def eval(self, expression: str) -> str:
        """Evaluate an Erlang expression on the node."""
        return self.ctl("eval", expression).strip()

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the Erlang node keeps running): every client is cut off."""
        self._changed.add("app")
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start the RabbitMQ application again and wait for its listener."""
        self.ctl("start_app")
        wait_until(lambda: listening(self.port), 30)
        self._changed.discard("app")

    def set_memory_watermark(self, fraction: float) -> None:
        """``set_vm_memory_high_watermark``: a tiny fraction raises the memory alarm at once."""
        self._changed.add("watermark")
        self.ctl("set_vm_memory_high_watermark", str(fraction))

    def set_consumer_timeout(self, millis: int, tick_millis: int = 1000) -> None:
        """Set ``consumer_timeout`` for channels opened from now on.

        RabbitMQ checks the timeout on each channel tick (every 60 s by
        default), so the tick is shortened too for a short timeout to bite.
        """
        self._changed.add("consumer_timeout")
        self.eval(f"application:set_env(rabbit, channel_tick_interval, {tick_millis}).")
        self.eval(f"application:set_env(rabbit, consumer_timeout, {millis}).")

    def restore(self) -> None:
        """Undo what a test changed: app running, default watermark and consumer timeout."""
        if "app" in self._changed:
            self.start_app()
        if "watermark" in self._changed:
            self.ctl("set_vm_memory_high_watermark", "0.4")
        if "consumer_timeout" in self._changed:
            self.set_consumer_timeout(1_800_000, tick_millis=60_000)
        self._changed.clear()

    def stop(self) -> None:
        """Stop the node for good and remove its files."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.ctl("shutdown", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            try:  # the Erlang runtime may outlive the launcher script: end its whole group
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A Redis server of our own, without persistence, that a test may stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="bjfault-redis-"))

    @property
    def url(self) -> str:
        """The Redis URL (database 0 of the private server)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on the same port."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server not found")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        if not wait_until(lambda: listening(self.port), 10):
            raise ServiceUnavailable("private redis-server did not start")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def private_vhost(rabbit: PrivateRabbit) -> Iterator[str]:
    """An AMQP URL on a fresh vhost of the private node, deleted afterwards."""
    vhost = f"fault-{uuid.uuid4().hex[:8]}"
    rabbit.ctl("add_vhost", vhost)
    rabbit.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@127.0.0.1:{rabbit.port}/{quote(vhost, safe='')}"
    finally:
        try:
            rabbit.restore()
            rabbit.ctl("delete_vhost", vhost)
        except RuntimeError:
            pass


@contextmanager
def private_database(admin_url: str, ddl: str = "") -> Iterator[str]:
    """A fresh database on the PostgreSQL server of ``admin_url`` (``ddl`` run in it), dropped afterwards.

    The caller may lock its tables or refuse connections to it; the server and
    every other database stay untouched.
    """
    import sqlalchemy

    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"bj_fault_{uuid.uuid4().hex[:10]}"
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
