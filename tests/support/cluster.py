"""A three-node RabbitMQ cluster of a test's own, on loopback, which the cluster tests kill and cut.

Every node has its own node name (``bjcN-<id>@localhost``), AMQP and
distribution ports (the distribution port fixed: ``inet_dist_listen_min`` =
``max``), database, logs and configuration, all under the test's temporary
directory, and the three share an Erlang cookie in a ``HOME`` of their own:
``rabbitmqctl`` with that environment can only address them, and nothing here
touches the shared node on 5672/25672/15672.  Management is disabled.  Each
node opens its distribution connections to its peers from a loopback address of
its own (``127.X.Y.N``, ``inet_dist_connect_options``), so a cut
(:meth:`RabbitCluster.cut`, iptables rules of :mod:`.netcut`) can silence every
packet of one node, whichever side opened the connection, and nothing else.
``cluster_partition_handling = pause_minority``: a node cut off from the two
others stops serving until it sees them again, so no side of a cut accepts
messages the other never hears of.  ``net_ticktime`` is short so a cut is
noticed in seconds (the default is a minute).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

import pytest

from .environment import port_open, unavailable
from .netcut import LoopbackCut, firewall
from .polling import wait_for
from .processes import free_ports
from .services import RABBITMQ_BIN, ServiceUnavailable

#: Seconds between Erlang distribution ticks: a silent peer is declared down after about this long.
NET_TICKTIME = 8


class ClusterNode:
    """One node of a :class:`RabbitCluster`: started, killed (SIGKILL), cut and started again by the tests."""

    def __init__(self, root: Path, home: Path, name: str, address: str) -> None:
        self.root = root
        self.home = home
        self.node = f"{name}@localhost"
        self.address = address  # where its distribution connections to its peers come from
        self.port, self.dist_port = free_ports(2)
        self.log = root / "log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of the node's default vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def env(self) -> dict[str, str]:
        """The environment ``rabbitmq-server`` and ``rabbitmqctl`` run with for this node."""
        return {
            **os.environ,
            "HOME": str(self.home),  # the cluster's Erlang cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                f"-kernel inet_dist_use_interface {{127,0,0,1}} -kernel net_ticktime {NET_TICKTIME} "
                f"-kernel inet_dist_listen_min {self.dist_port} -kernel inet_dist_listen_max {self.dist_port} "
                f"-kernel inet_dist_connect_options [{{ip,{{{self.address.replace('.', ',')}}}}}]"),
        }

    def configure(self) -> None:
        for sub in ("log", "mnesia"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq-env.conf").write_text("")  # ignore /etc/rabbitmq/rabbitmq-env.conf
        (self.root / "enabled_plugins").write_text("[].\n")  # no management: no port 15672 to collide on
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = false\n"
            "cluster_partition_handling = pause_minority\n"
        )

    def start(self) -> None:
        """Launch the node (not waiting: see :meth:`wait_listening`)."""
        server = RABBITMQ_BIN / "rabbitmq-server"
        if not os.access(server, os.X_OK):
            raise ServiceUnavailable(f"{server} not found (set RABBITMQ_BIN)")
        self.process = subprocess.Popen([str(server)], env=self.env(), cwd=self.root,
                                        stdout=(self.log / "stdout.log").open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def listening(self) -> bool:
        """Whether the node accepts AMQP connections."""
        return port_open(self.url, self.port)

    def wait_listening(self, timeout: float = 90) -> None:
        try:
            wait_for(lambda: self.listening() or (self.process is not None and self.process.poll() is not None),
                     f"{self.node} to listen", timeout, every=0.2)
        except AssertionError:
            raise ServiceUnavailable(f"{self.node} did not listen within {timeout} s: {self.tail()}") from None
        if self.process is not None and self.process.poll() is not None:
            raise ServiceUnavailable(f"{self.node} exited: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        path = self.log / "stdout.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <node> ARGS`` (its output)."""
        result = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env(),
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.node} {' '.join(args)}: {result.stderr or result.stdout}")
        return result.stdout

    def kill(self) -> None:
        """SIGKILL the node's whole process group (the Erlang VM and its helpers): no goodbye to anyone."""
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RabbitCluster:
    """Three :class:`ClusterNode` joined into one cluster (the first is the seed).

    Parameters:
      root: The test's temporary directory; everything of the cluster lives under it.
    """

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.home = root / "home"
        tag = uuid.uuid4().hex[:6]
        # 127.X.Y.N: all of 127/8 is this machine's loopback; X and Y at random keep two runs' nodes apart.
        prefix = f"127.{int(tag[:2], 16) % 254 + 1}.{int(tag[2:4], 16) % 254 + 1}"
        self.nodes = [ClusterNode(root / f"node{i}", self.home, f"bjc{i}-{tag}", f"{prefix}.{i}")
                      for i in range(1, size + 1)]
        self.cuts: list[LoopbackCut] = []
        self._consumer_timeout_changed = False

    def urls(self, vhost: str = "%2F") -> list[str]:
        """Every node's AMQP URL on ``vhost`` (URL-encoded), in node order."""
        return [node.url.rsplit("/", 1)[0] + "/" + vhost for node in self.nodes]

    def start(self) -> None:
        """Boot the three nodes side by side, then join the second and third to the first."""
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex.upper())
        cookie.chmod(0o400)
        for node in self.nodes:
            node.root.mkdir(parents=True, exist_ok=True)
            node.configure()
            node.start()
        for node in self.nodes:
            node.wait_listening()
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", seed.node)
            node.ctl("start_app")
            node.wait_listening()
        wait_for(lambda: self.running_nodes() == {n.node for n in self.nodes}, "all three nodes running together",
                 timeout=60, every=0.5, ignore=(RuntimeError, subprocess.TimeoutExpired))

    def running_nodes(self, via: ClusterNode | None = None) -> set[str]:
        """The nodes the cluster reports running (asked through ``via``, else the first live node)."""
        node = via or next(n for n in self.nodes if n.alive() and n.listening())
        text = node.ctl("eval", "rabbit_nodes:all_running().", timeout=20)
        return {name.strip(" '\n") for name in text.strip().strip("[]").split(",") if name.strip()}

    def add_vhost(self, name: str) -> str:
        """A vhost for the test (guest may do anything on it); returns its URL-encoded name."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return quote(name, safe="")

    @contextmanager
    def vhost(self, prefix: str) -> Iterator[str]:
        """A fresh vhost (``prefix-<pid>-<id>``) and the first node's URL on it; deleted afterwards."""
        name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        quoted = self.add_vhost(name)
        try:
            yield self.urls(quoted)[0]
        finally:
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                self.ctl("delete_vhost", name)

    # What the fault tests ask of their private node (tests/support/services.py's PrivateRabbit), so the
    # cluster stands in for it under --rabbitmq-cluster: the first node's port and URL, rabbitmqctl, and a
    # consumer timeout set on every node.

    @property
    def port(self) -> int:
        """The first node's AMQP port (where the tests' clients connect)."""
        return self.nodes[0].port

    @property
    def url(self) -> str:
        """The first node's AMQP URL of the default vhost."""
        return self.nodes[0].url

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl ARGS`` through the first live node not cut off (cluster-wide commands: vhosts, queues)."""
        cut = {c.tag for c in self.cuts if c.applied}
        node = next((n for n in self.nodes if n.alive() and n.node not in cut), self.nodes[0])
        return node.ctl(*args, timeout=timeout)

    def set_consumer_timeout(self, millis: int, tick_millis: int = 1000) -> None:
        """``consumer_timeout`` (and the channel tick that checks it) on every node, for channels opened
        from now on."""
        self._consumer_timeout_changed = True
        for node in self.nodes:
            node.ctl("eval", f"application:set_env(rabbit, channel_tick_interval, {tick_millis}).")
            node.ctl("eval", f"application:set_env(rabbit, consumer_timeout, {millis}).")

    def restore(self) -> None:
        """Undo what a test changed: the default consumer timeout."""
        if self._consumer_timeout_changed:
            self.set_consumer_timeout(1_800_000, tick_millis=60_000)
            self._consumer_timeout_changed = False

    def leader_of(self, vhost: str, queue: str) -> ClusterNode:
        """The node holding the Raft leader of quorum queue ``queue`` in ``vhost``."""
        out = self.ctl("list_queues", "-p", vhost, "name", "leader", "--no-table-headers", "--quiet", timeout=30)
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return next(n for n in self.nodes if n.node == parts[1])
        raise AssertionError(f"no leader listed for {queue!r}: {out!r}")

    def restart(self, node: ClusterNode) -> float:
        """Start a killed node again and wait until the cluster runs it; returns the seconds it took."""
        started = time.monotonic()
        node.start()
        node.wait_listening()
        wait_for(lambda: node.node in self.running_nodes(), f"{node.node} back in the cluster", timeout=90,
                 every=0.5, ignore=(RuntimeError, subprocess.TimeoutExpired))
        return time.monotonic() - started

    def cut(self, node: ClusterNode) -> LoopbackCut:
        """Cut ``node`` off the network: its peers and its clients, until :meth:`heal`.

        iptables DROP rules on ``lo`` (:class:`~tests.support.netcut.LoopbackCut`) silence
        the node's AMQP and distribution ports both ways and every packet from or to
        the address it connects to its peers from, as a pulled cable would: nobody
        gets a reset, each side notices by its own timeouts (``net_ticktime`` between
        the nodes, the AMQP heartbeat for clients).  pause_minority then stops the
        node's RabbitMQ application until it sees its peers again.

        Raises:
          ServiceUnavailable: iptables cannot be used here (not root, not installed, refused).
        """
        cut = LoopbackCut(firewall(), node.node, (node.port, node.dist_port), node.address)
        self.cuts.append(cut)
        cut.apply()
        return cut

    def heal(self) -> None:
        """Delete the rules of every cut (the nodes find each other again by themselves)."""
        while self.cuts:
            self.cuts.pop().heal()

    def stop(self) -> None:
        """Heal any cut, then kill every node (SIGKILL: nothing of it is kept)."""
        self.heal()
        for node in self.nodes:
            node.kill()


def on_cluster(config: pytest.Config) -> bool:
    """Whether the pytest session runs against the three-node cluster (``--rabbitmq-cluster``)."""
    return bool(config.getoption("rabbitmq_cluster", default=False))


@contextmanager
def rabbit_cluster(root: Path) -> Iterator[RabbitCluster]:
    """A booted three-node cluster under ``root``, killed afterwards; skipped (failed under CI) when it cannot boot."""
    root.chmod(0o755)
    cluster = RabbitCluster(root)
    try:
        cluster.start()
    except (ServiceUnavailable, RuntimeError, AssertionError) as exc:
        cluster.stop()
        unavailable(f"a three-node RabbitMQ cluster ({exc})")
    try:
        yield cluster
    finally:
        cluster.stop()
