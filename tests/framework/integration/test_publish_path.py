"""One publish path: every way a message reaches RabbitMQ goes through broker_jobs.publishing.

Each test takes a message the way a user or the system publishes it (send, a
delay, a retry, a rate-limit deferral, the scheduler, a dead-letter replay),
reads it back off the real RabbitMQ, and checks that its AMQP properties are
the ones :func:`broker_jobs.publishing.properties` gives for its priority, and
that the publish asked :mod:`broker_jobs.publishing` for them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pika
import pytest
from dramatiq import Worker

from broker_jobs import dead_letters, job, publishing
from broker_jobs.errors import PermanentJobError
from broker_jobs.priorities import Priority, amqp_priority
from broker_jobs.scheduling.publisher import Outgoing, Publisher
from broker_jobs.settings import get_settings
from broker_jobs.store.history import writer
from tests.support import queue_depth, wait_for

pytestmark = pytest.mark.rabbitmq

HIGH = amqp_priority(Priority.HIGH)


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int | None]]:
    """The priorities publishing.properties was asked for (it still answers as before)."""
    calls: list[int | None] = []
    real = publishing.properties

    def recording(priority: int | None) -> pika.BasicProperties:
        calls.append(priority)
        return real(priority)

    monkeypatch.setattr(publishing, "properties", recording)
    yield calls


def taken(queue: str) -> pika.BasicProperties:
    """The properties of the first message ready in ``queue`` (taken off it)."""
    url = get_settings().rabbitmq_url
    wait_for(lambda: queue_depth(url, queue) >= 1, f"a message in {queue}")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        method, properties, _body = connection.channel().basic_get(queue, auto_ack=True)
    finally:
        connection.close()
    assert method is not None
    return properties


def assert_ours(properties: pika.BasicProperties) -> None:
    # Every field (delivery mode, priority, and nothing else set) as the one publish path builds them.
    assert vars(properties) == vars(publishing.properties(HIGH))
    assert properties.delivery_mode == publishing.PERSISTENT and properties.priority == HIGH


def work_until(broker: Any, queue: str, done: Callable[[], Any], what: str) -> None:
    """Run a worker on ``queue`` until ``done()``; what it still holds goes back to RabbitMQ."""
    worker = Worker(broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        wait_for(done, what)
    finally:
        worker.stop()


def test_a_sent_message_is_published_with_the_properties_of_the_one_path(rabbit_broker, asked):
    queue = unique("sent")

    @job(name=unique("probe"), queue=queue, priority="high", broker=rabbit_broker)
    def probe() -> None: ...

    probe.send()
    assert HIGH in asked
    assert_ours(taken(queue))


def test_a_delayed_message_is_published_with_the_properties_of_the_one_path(rabbit_broker, asked):
    queue = unique("delayed")

    @job(name=unique("later"), queue=queue, priority="high", broker=rabbit_broker)
    def later() -> None: ...

    later.send_with_options(delay=600_000)
    assert HIGH in asked
    assert_ours(taken(queue + ".DQ"))


def test_a_retry_is_published_with_the_properties_of_the_one_path(rabbit_broker, asked):
    queue, tries = unique("retried"), []

    @job(name=unique("flaky"), queue=queue, priority="high", broker=rabbit_broker, max_retries=3,
         min_backoff=600)
    def flaky() -> None:
        tries.append(1)
        raise RuntimeError("first try fails")

    flaky.send()
    asked.clear()
    work_until(rabbit_broker, queue, lambda: tries and asked, "the retry to be published")
    assert asked == [HIGH]
    assert_ours(taken(queue + ".DQ"))


def test_a_rate_limit_deferral_is_published_with_the_properties_of_the_one_path(rabbit_broker, asked):
    queue, runs = unique("limited"), []

    @job(name=unique("scarce"), queue=queue, priority="high", broker=rabbit_broker, rate_limit="1/h")
    def scarce() -> None:
        runs.append(1)

    scarce.send()
    scarce.send()
    asked.clear()
    work_until(rabbit_broker, queue, lambda: runs and asked, "one run and one deferral")
    assert asked == [HIGH] and len(runs) == 1
    assert_ours(taken(queue + ".DQ"))


def test_the_scheduler_publishes_with_the_properties_of_the_one_path(rabbit_broker, asked):
    queue = unique("scheduled")
    rabbit_broker.declare_queue(queue, ensure=True)
    publisher = Publisher(get_settings().rabbitmq_url, max_bytes=get_settings().max_message_bytes)
    try:
        publisher.publish([Outgoing(job_id="j", actor="diagnostics", queue=queue, args=(), kwargs={},
                                    priority=Priority.HIGH, fire_id=f"j@{uuid.uuid4()}",
                                    slot=datetime.now(UTC))], 1_700_000_000_000)
    finally:
        publisher.close()
    assert asked == [HIGH]
    assert_ours(taken(queue))


def test_a_replayed_dead_letter_is_published_with_the_properties_of_the_one_path(rabbit_broker, asked):
    queue = unique("replayed")

    @job(name=unique("doomed"), queue=queue, priority="high", broker=rabbit_broker)
    def doomed() -> None:
        raise PermanentJobError("never works")

    doomed.send()
    work_until(rabbit_broker, queue, lambda: queue_depth(get_settings().rabbitmq_url, queue + ".XQ"),
               "the dead letter")
    writer.flush()
    asked.clear()
    result = dead_letters.replay(get_settings(), queue=queue)
    assert len(result.replayed) == 1 and asked == [HIGH]
    assert_ours(taken(queue))
