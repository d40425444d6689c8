"""Services that are not broker_jobs send jobs: one with only ``dramatiq[rabbitmq]`` installed (a virtualenv of
its own that cannot import broker_jobs), one speaking bare AMQP.  A real ``dramatiq broker_jobs.actors`` worker
runs what they send, and the history records the priority each message really carried."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from broker_jobs.store.db import get_engine
from broker_jobs.store.queries import query_runs
from tests.support import RABBITMQ_URL, Process, free_port, port_open, unavailable, vhost, wait_for
from tests.support.foreign import dramatiq_body, publish

pytestmark = pytest.mark.rabbitmq

#: What a service with only Dramatiq runs: the README's "Sending from another service" example.
PLAIN_DRAMATIQ_SENDER = """\
import json, os, sys

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

broker = RabbitmqBroker(url=os.environ["RABBITMQ_URL"], max_priority=10, confirm_delivery=True)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="diagnostics", queue_name="default")
def diagnostics():
    "Only the name and the queue matter here: broker_jobs' worker runs the real job."


options = json.loads(sys.argv[1])
args = options.pop("args", [])
print(diagnostics.send_with_options(args=tuple(args), **options).message_id)
broker.close()
"""


@pytest.fixture(scope="session")
def plain_dramatiq_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtualenv holding ``dramatiq[rabbitmq]`` and nothing of ours."""
    root = tmp_path_factory.mktemp("plain-dramatiq")
    made = subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], capture_output=True, text=True)
    if made.returncode != 0:
        unavailable(f"a virtualenv ({made.stderr.strip()[-300:]})")
    python = root / "venv" / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "dramatiq[rabbitmq]"],
                               capture_output=True, text=True, timeout=600)
    if installed.returncode != 0:
        unavailable(f"dramatiq[rabbitmq] from the package index ({installed.stderr.strip()[-300:]})")
    return python


def run_isolated(python: Path, code: str, *args: str, env: dict[str, str],
                 cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -I -c CODE ARGS``: no PYTHONPATH, no user site, no current directory on sys.path."""
    return subprocess.run([str(python), "-I", "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **env}, cwd=cwd)


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-foreign") as url:
        if url is None:
            unavailable("a vhost of its own on RabbitMQ (management API or rabbitmqctl)")
        yield url


@pytest.fixture(scope="module")
def env(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("foreign")
    return {"RABBITMQ_URL": amqp_url, "DATABASE_URL": f"sqlite:///{tmp}/jobs.sqlite3", "PYTHONUNBUFFERED": "1",
            "METRICS_PORT": str(free_port()), "METRICS_DIR": str(tmp / "metrics"), "RETRY_MIN_BACKOFF": "0.05"}


@pytest.fixture(scope="module")
def worker(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = Process(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2"], env,
                   tmp_path_factory.mktemp("worker") / "worker.log").start()
    proc.wait_for_log("ready for action", timeout=90)
    yield proc
    proc.stop()
    assert "PRECONDITION_FAILED" not in proc.text() and "exists on RabbitMQ" not in proc.text(), proc.text()


def run_of(env: dict[str, str], message_id: str, statuses: set[str]) -> Any:
    def found() -> Any:
        runs = query_runs(get_engine(env["DATABASE_URL"]), actor="diagnostics", limit=1000)
        return next((r for r in runs if r.message_id == message_id and r.status in statuses), None)

    return wait_for(found, f"message {message_id} to reach {statuses}", timeout=90)


def test_the_plain_dramatiq_environment_cannot_import_broker_jobs(plain_dramatiq_python, tmp_path):
    result = run_isolated(plain_dramatiq_python, "import dramatiq, pika; import broker_jobs", env={}, cwd=tmp_path)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'broker_jobs'" in result.stderr


@pytest.mark.parametrize(("options", "recorded"), [
    ({"broker_priority": 9}, "high"),
    ({"broker_priority": 1}, "low"),
    ({}, "none"),  # no AMQP priority: RabbitMQ ranks it 0, below low
])
def test_a_service_with_only_dramatiq_sends_a_job_that_runs_with_the_priority_it_set(
        plain_dramatiq_python, env, worker, tmp_path, options, recorded):
    sent = run_isolated(plain_dramatiq_python, PLAIN_DRAMATIQ_SENDER, json.dumps(options),
                        env={"RABBITMQ_URL": env["RABBITMQ_URL"]}, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    run = run_of(env, sent.stdout.strip(), {"succeeded"})
    assert (run.queue, run.priority) == ("default", recorded)


def test_a_plain_dramatiq_message_with_wrong_arguments_is_dead_lettered_with_its_reason(
        plain_dramatiq_python, env, worker, tmp_path):
    sent = run_isolated(plain_dramatiq_python, PLAIN_DRAMATIQ_SENDER, json.dumps({"args": [1]}),
                        env={"RABBITMQ_URL": env["RABBITMQ_URL"]}, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    run = run_of(env, sent.stdout.strip(), {"dead"})
    assert "argument" in (run.error or "")


@pytest.mark.parametrize(("priority", "recorded"), [(9, "high"), (5, "medium"), (None, "none"), (0, "none")])
def test_a_bare_amqp_publish_of_a_hand_built_body_runs_and_records_its_real_priority(env, worker, priority,
                                                                                      recorded):
    message_id, body = dramatiq_body("diagnostics", "default")
    publish(env["RABBITMQ_URL"], "default", [body], priority=priority)
    run = run_of(env, message_id, {"succeeded"})
    assert (run.actor, run.queue, run.priority) == ("diagnostics", "default", recorded)


def test_rabbitmq_serves_a_message_without_priority_after_low_on_our_queues():
    from broker_jobs.broker import build_broker
    from broker_jobs.settings import Settings

    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-rank") as url:
        if url is None:
            unavailable("a vhost of its own on RabbitMQ")
        broker = build_broker(Settings(rabbitmq_url=url))
        broker.declare_queue("etl", ensure=True)  # type: ignore[call-arg]
        broker.close()
        unset, unset_body = dramatiq_body("etl_source", "etl")
        low, low_body = dramatiq_body("etl_source", "etl")
        publish(url, "etl", [unset_body])  # first in, no priority
        publish(url, "etl", [low_body], priority=1)
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            order = [json.loads(channel.basic_get("etl", auto_ack=True)[2])["message_id"] for _ in range(2)]
        finally:
            connection.close()
        assert order == [low, unset]
