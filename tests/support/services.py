"""Private RabbitMQ and Redis for the fault tests, which they may break (their PostgreSQL
databases come from :func:`tests.support.databases.database`).

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
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from .environment import port_open, unavailable
from .polling import wait_for
from .processes import free_port, kill, stop

RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


class ServiceUnavailable(RuntimeError):
    """A private service could not be started on this machine."""


class PrivateRabbit:
    """A RabbitMQ node of our own: started, broken and stopped by the fault tests.

    Parameters:
      root: A directory for its database, logs, cookie and configuration.
      listen: The addresses its AMQP listener binds, all on one port; keep
        127.0.0.1 among them (``url`` and ``start`` use it).
    """

    def __init__(self, root: Path, listen: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.root = root
        self.listen = listen
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
        names = ["default", *(str(i) for i in range(2, len(self.listen) + 1))]
        listeners = [f"listeners.tcp.{name} = {address}:{self.port}\n"
                     for name, address in zip(names, self.listen, strict=True)]
        (self.root / "rabbitmq.conf").write_text(
            "".join(listeners)
            + "loopback_users.guest = false\n"
            "max_message_size = 4194304\n"
        )
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(server)], env=self._env(), cwd=self.root, stdout=(self.log / "stdout.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for(lambda: port_open(self.url, self.port) or self.process.poll() is not None,
                     "private RabbitMQ to listen", timeout, every=0.2)
        except AssertionError:
            self.stop()
            raise ServiceUnavailable(f"private RabbitMQ did not listen within {timeout} s") from None
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
        with suppress(AssertionError):  # a node slow to listen shows in the test that needs it
            wait_for(lambda: port_open(self.url, self.port), "private RabbitMQ to listen again", 30, every=0.2)
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
                kill(self.process)
        if self.process is not None:
            try:  # the Erlang runtime may outlive the launcher script: end its whole group
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def booted_rabbit(root: Path, listen: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[PrivateRabbit]:
    """A private RabbitMQ node in ``root``, listening on ``listen``, stopped afterwards;
    the test is skipped (failed under CI) when it cannot boot."""

    root.chmod(0o755)
    node = PrivateRabbit(root, listen=listen)
    try:
        node.start()
    except ServiceUnavailable as exc:
        unavailable(f"a private RabbitMQ node ({exc})")
    try:
        yield node
    finally:
        node.stop()


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
        try:
            wait_for(lambda: port_open(self.url, self.port), "private redis-server to listen", 10, every=0.2)
        except AssertionError:
            raise ServiceUnavailable("private redis-server did not start") from None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            stop(self.process, timeout=10)

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
