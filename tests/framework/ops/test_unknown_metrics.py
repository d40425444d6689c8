"""A figure the web app's /metrics cannot know is left out and its source marked down, never a false 0.

Unacked and delayed counts come only from RabbitMQ's management API: with
``RABBITMQ_MANAGEMENT_URL`` on a closed port, ``broker-jobs serve`` still exports the
depths a passive declare gives (ready, dead, consumers), marks
``broker_jobs_collector_up{source="rabbitmq_management"}`` 0 and has no unacked or
delayed series, even while a message is held unacked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    RABBITMQ_URL,
    SECRET,
    UNREACHABLE,
    bearer,
    free_ports,
    port_open,
    start,
    stop,
    unavailable,
    vhost,
    wait_for,
)

pytestmark = pytest.mark.rabbitmq

QUEUE = "etl"


def samples(text: str, name: str) -> dict[frozenset, float]:
    return {frozenset(s.labels.items()): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


def up(text: str) -> dict[str, float]:
    return {dict(labels)["source"]: value for labels, value in samples(text, "broker_jobs_collector_up").items()}


def depths(text: str, queue: str) -> dict[str, float]:
    return {dict(labels)["state"]: value for labels, value in samples(text, "broker_jobs_queue_messages").items()
            if dict(labels)["queue"] == queue}


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-unknown") as url:
        if url is None:
            unavailable(f"a vhost of its own on RabbitMQ at {RABBITMQ_URL}")
        yield url


@pytest.fixture
def held_message(amqp_url: str, tmp_path: Path) -> Iterator[None]:
    """One message sent to the etl queue, delivered to a consumer that never acks it (unacked: 1)."""
    from dramatiq import Message

    from broker_jobs.broker import build_broker
    from broker_jobs.settings import Settings

    # Sent through our broker, so the queue is declared with its real arguments.
    broker = build_broker(Settings(rabbitmq_url=amqp_url, database_url=f"sqlite:///{tmp_path}/send.sqlite3",
                                   redis_url=""))
    broker.enqueue(Message(queue_name=QUEUE, actor_name="etl_sync", args=(), kwargs={}, options={}))
    broker.close()
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    held = []
    channel.basic_consume(QUEUE, lambda *args: held.append(args), auto_ack=False)
    wait_for(lambda: connection.process_data_events(time_limit=0.2) or held, "the message delivered", timeout=20)
    yield
    channel.basic_ack(held[0][1].delivery_tag)  # gone, so the next test starts from an empty queue
    connection.close()


def serve(amqp_url: str, tmp_path: Path, **extra: str) -> tuple[object, str]:
    api_port, closed = free_ports(2)
    env = {"RABBITMQ_URL": amqp_url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3", "REDIS_URL": "",
           "API_JWT_SECRET": SECRET, "METRICS_DIR": str(tmp_path / "metrics"),
           "RABBITMQ_MANAGEMENT_URL": f"http://127.0.0.1:{closed}", "PYTHONUNBUFFERED": "1", **extra}
    proc = start(["-m", "broker_jobs", "serve", "--port", str(api_port)], env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{api_port}"
    wait_for(lambda: proc.poll() is None and httpx.get(base + "/health/live", timeout=1).status_code == 200,
             "serve answering", timeout=30, every=0.1, ignore=UNREACHABLE)
    return proc, base


def test_without_the_management_api_unacked_and_delayed_are_absent_and_marked_down(amqp_url, held_message,
                                                                                     tmp_path):
    proc, base = serve(amqp_url, tmp_path)
    try:
        text = httpx.get(base + "/metrics", timeout=10).text
        assert up(text) == {"rabbitmq": 1.0, "rabbitmq_management": 0.0, "database": 1.0}
        # What a passive declare knows is there; the message held unacked is not counted as 0 anywhere.
        assert depths(text, QUEUE) == {"ready": 0.0, "dead": 0.0}
        assert not any(dict(labels)["state"] in ("unacked", "delayed")
                       for labels in samples(text, "broker_jobs_queue_messages"))
        rows = {r["queue"]: r for r in httpx.get(base + "/api/v1/queues", headers=bearer("read"), timeout=10).json()}
        assert rows[QUEUE]["active"] is None and rows[QUEUE]["delayed"] is None
    finally:
        stop(proc, timeout=20)


def test_with_the_management_api_the_held_message_is_counted_as_unacked(amqp_url, held_message, tmp_path):
    from tests.support import management

    if management("GET", "/overview") != 200:
        unavailable("RabbitMQ's management API")
    host = RABBITMQ_URL.split("@")[-1].split(":")[0].split("/")[0] or "127.0.0.1"
    proc, base = serve(amqp_url, tmp_path, RABBITMQ_MANAGEMENT_URL=f"http://{host}:15672")
    try:
        # The management API refreshes its message counts every few seconds.
        text = wait_for(lambda: (t := httpx.get(base + "/metrics", timeout=10).text)
                        and depths(t, QUEUE).get("unacked") == 1.0 and t,
                        "the held message counted as unacked", timeout=60, every=1, ignore=UNREACHABLE)
        assert up(text) == {"rabbitmq": 1.0, "rabbitmq_management": 1.0, "database": 1.0}
        assert depths(text, QUEUE) == {"ready": 0.0, "unacked": 1.0, "delayed": 0.0, "dead": 0.0}
    finally:
        stop(proc, timeout=20)


def test_with_the_database_down_history_is_absent_and_queue_depths_stay(amqp_url, settings_env):
    from broker_jobs.api.collector import StateCollector
    from broker_jobs.settings import Settings

    [closed] = free_ports(1)
    settings = Settings(rabbitmq_url=amqp_url, database_url=f"postgresql://postgres@127.0.0.1:{closed}/none",
                        rabbitmq_management_url=f"http://127.0.0.1:{free_ports(1)[0]}")
    families = {f.name: f for f in StateCollector(settings).collect()}
    assert "broker_jobs_history_runs" not in families
    assert "broker_jobs_dead_letter_oldest_age_seconds" not in families
    assert {s.labels["source"]: s.value for s in families["broker_jobs_collector_up"].samples} == {
        "rabbitmq": 1.0, "rabbitmq_management": 0.0, "database": 0.0}
    ready = {s.labels["queue"]: s.value for s in families["broker_jobs_queue_messages"].samples
             if s.labels["state"] == "ready"}
    assert QUEUE in ready
