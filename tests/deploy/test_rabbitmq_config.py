"""rabbitmq/rabbitmq.conf, enabled_plugins and definitions.json boot a real RabbitMQ node.

The node is a private one (own name, ports, data directory under tmp_path), stopped
at the end: the shared RabbitMQ that other tests use is never touched.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_ports, stop, unavailable, wait_for

# Debian's rabbitmq-server package; the scripts in /usr/sbin would switch to the rabbitmq user.
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


class Node:
    """A private RabbitMQ node started from the repo's rabbitmq/ files."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.amqp, self.management, self.prometheus, self.dist = free_ports(4)
        self.name = f"bjconf{os.getpid()}@localhost"
        self.log = workdir / "node.log"
        conf = (ROOT / "rabbitmq" / "rabbitmq.conf").read_text()
        # Same file, other ports and paths: only loopback, nothing the shared node uses.
        for key, value in {
            "listeners.tcp.default": f"127.0.0.1:{self.amqp}",
            "management.tcp.port": f"{self.management}\nmanagement.tcp.ip = 127.0.0.1",
            "prometheus.tcp.port": f"{self.prometheus}\nprometheus.tcp.ip = 127.0.0.1",
            "load_definitions": str(ROOT / "rabbitmq" / "definitions.json"),
        }.items():
            conf, found = re.subn(rf"^{re.escape(key)} = .*$", f"{key} = {value}", conf, flags=re.M)
            assert found == 1, key
        (workdir / "rabbitmq.conf").write_text(conf)
        (workdir / "rabbitmq-env.conf").write_text("")
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.workdir),  # a cookie of its own
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(ROOT / "rabbitmq" / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
            "RABBITMQ_DIST_PORT": str(self.dist),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([str(SERVER)], env=self.env(), cwd=self.workdir, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, auth: tuple[str, str]) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.management}/api{path}", auth=auth, timeout=5)

    def wait_until_up(self, timeout: float = 60) -> None:
        proc = self.proc
        assert proc is not None
        try:
            wait_for(lambda: proc.poll() is not None
                     or self.api("/overview", ("broker_jobs", "change-me")).status_code == 200,
                     "the node to come up", timeout, every=0.5, ignore=(httpx.HTTPError,))
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.tail()}") from None
        if proc.poll() is not None:
            raise AssertionError(f"the node exited with {proc.returncode}:\n{self.tail()}")

    def eval(self, expression: str) -> str:
        """Evaluate an Erlang expression on the node (rabbitmqctl eval)."""
        result = subprocess.run([str(CTL), "-n", self.name, "eval", expression], env=self.env(),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if not SERVER.exists():
        unavailable("RabbitMQ's server scripts (Debian package rabbitmq-server)")
    workdir = tmp_path_factory.mktemp("rabbitmq-node")
    workdir.chmod(0o755)
    started = Node(workdir)
    started.start()
    try:
        started.wait_until_up()
        yield started
    finally:
        started.stop()


def test_the_conf_and_plugins_boot_with_management_and_prometheus(node: Node):
    errors = [line for line in node.log.read_text(errors="replace").splitlines() if "[error]" in line]
    assert errors == []
    wanted = 'rabbitmq_queue_messages_ready{vhost="broker_jobs",queue="etl"}'
    # per-object metrics (the conf says so) appear once the queue stats are collected
    def scraped() -> str:
        metrics = httpx.get(f"http://127.0.0.1:{node.prometheus}/metrics", timeout=5)
        return metrics.text if metrics.status_code == 200 and wanted in metrics.text else ""

    assert wanted in wait_for(scraped, f"{wanted} in RabbitMQ's /metrics", 30, every=1, ignore=(httpx.HTTPError,))


def test_the_boot_imports_the_app_user_vhost_queues_and_policy(node: Node):
    auth = ("broker_jobs", "change-me")
    assert node.api("/whoami", auth).json()["name"] == "broker_jobs"
    queues = {q["name"] for q in node.api("/queues/broker_jobs", auth).json()}
    assert queues == {f"{q}{suffix}" for q in ("etl", "sync", "maintenance", "default")
                      for suffix in ("", ".DQ", ".XQ")}
    assert [p["name"] for p in node.api("/policies/broker_jobs", auth).json()] == ["broker-jobs-dead-letters"]


def test_the_consumer_timeout_in_force_is_the_documented_one(node: Node):
    assert node.eval("application:get_env(rabbit, consumer_timeout).") == "{ok,1800000}"


def test_guest_may_only_log_in_from_localhost(node: Node):
    assert node.eval("application:get_env(rabbit, loopback_users).") == '{ok,[<<"guest">>]}'
