"""One size limit (``MAX_MESSAGE_BYTES``) on every path that publishes, on a real RabbitMQ.

``send`` is covered in tests/framework/faults/test_bad_input.py and replay in
tests/framework/faults/test_dead_letter_archive.py; here: a delay that hops through ``Q.DQ``,
retries (trimmed traceback; over the limit: dead-lettered with the reason), the
scheduler's publisher and jobs file, and a delivery over the limit from elsewhere.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pika
import pytest
import yaml
from dramatiq import Worker
from dramatiq.message import Message

from broker_jobs import dead_letters, job
from broker_jobs.errors import ConfigError, MessageTooLarge
from broker_jobs.priorities import Priority
from broker_jobs.scheduling.publisher import Outgoing, Publisher
from broker_jobs.settings import get_settings
from broker_jobs.store.history import writer
from tests.support import queue_depth, wait_for

pytestmark = pytest.mark.rabbitmq

LIMIT = 4096


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def small_broker(settings_env: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """The real broker with ``MAX_MESSAGE_BYTES=4096``."""
    settings_env.setenv("MAX_MESSAGE_BYTES", str(LIMIT))
    return request.getfixturevalue("rabbit_broker")


def dead(queue: str) -> list[dead_letters.DeadLetter]:
    writer.flush()
    return dead_letters.list_dead(get_settings(), queue=queue)


def test_a_long_delay_that_hops_through_the_delay_queue_is_refused_over_the_limit(small_broker):
    queue = unique("hop")

    @job(name=unique("later"), queue=queue, broker=small_broker)
    def later(payload: str) -> None: ...

    hold = small_broker.max_hold_ms
    with pytest.raises(MessageTooLarge, match=f"over MAX_MESSAGE_BYTES={LIMIT}"):
        later.send_with_options(args=("x" * LIMIT,), delay=hold + 60_000)
    assert queue_depth(get_settings().rabbitmq_url, queue + ".DQ") == 0
    later.send_with_options(args=("small",), delay=hold + 60_000)  # under the limit: published, hopping
    assert queue_depth(get_settings().rabbitmq_url, queue + ".DQ") == 1


def test_a_retry_keeps_the_end_of_a_long_traceback_and_runs_again(small_broker):
    queue, tries = unique("trim"), []

    @job(name=unique("verbose"), queue=queue, broker=small_broker, max_retries=2, min_backoff=0.05)
    def verbose() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("y" * (2 * LIMIT) + " the end of the error")

    worker = Worker(small_broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        verbose.send()
        wait_for(lambda: len(tries) == 2, "the retry to run")
    finally:
        worker.stop()
    assert dead(queue) == []


def test_a_retry_over_the_limit_is_dead_lettered_with_the_reason(small_broker):
    queue = unique("fat_retry")

    @job(name=unique("fat"), queue=queue, broker=small_broker, max_retries=5, min_backoff=0.05)
    def fat(payload: str) -> None:
        raise RuntimeError("z" * LIMIT)

    worker = Worker(small_broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        # Under the limit as sent; its retry adds the retry count, the traceback and a timestamp.
        sent = fat.send("p" * (LIMIT - 400))
        [letter] = wait_for(lambda: dead(queue), "the message in the dead-letter queue")
    finally:
        worker.stop()
    assert letter.id == sent.message_id
    assert "retry not enqueued" in letter.reason and f"MAX_MESSAGE_BYTES={LIMIT}" in letter.reason


def test_a_delivery_over_the_limit_from_another_producer_is_dead_lettered_naming_the_body(small_broker):
    queue = unique("big_in")

    @job(name=unique("target"), queue=queue, broker=small_broker)
    def target(payload: str) -> None: ...

    small_broker.declare_queue(queue, ensure=True)
    message = Message(queue_name=queue, actor_name=target.actor_name, args=("q" * LIMIT,), kwargs={}, options={})
    connection = pika.BlockingConnection(pika.URLParameters(get_settings().rabbitmq_url))
    try:
        connection.channel().basic_publish("", queue, message.encode(), pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()
    worker = Worker(small_broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        [letter] = wait_for(lambda: dead(queue), "the message in the dead-letter queue")
    finally:
        worker.stop()
    assert letter.id == message.message_id
    assert letter.reason.startswith("malformed message: body:") and f"MAX_MESSAGE_BYTES={LIMIT}" in letter.reason


def test_the_scheduler_publisher_refuses_a_batch_with_a_message_over_the_limit(rabbit_broker):
    queue = unique("sched")
    rabbit_broker.declare_queue(queue, ensure=True)
    url = get_settings().rabbitmq_url
    slot = datetime.now(UTC)

    def outgoing(payload: str) -> Outgoing:
        return Outgoing(job_id="big", actor="diagnostics", queue=queue, args=(payload,), kwargs={},
                        priority=Priority.LOW, fire_id=f"big@{uuid.uuid4()}", slot=slot)

    publisher = Publisher(url, max_bytes=LIMIT)
    try:
        with pytest.raises(MessageTooLarge, match=f"over MAX_MESSAGE_BYTES={LIMIT}"):
            publisher.publish([outgoing("ok"), outgoing("x" * LIMIT)], 1_700_000_000_000)
        assert queue_depth(url, queue) == 0
        publisher.publish([outgoing("ok")], 1_700_000_000_000)
        assert queue_depth(url, queue) == 1
    finally:
        publisher.close()


def test_a_jobs_file_entry_whose_message_would_be_over_the_limit_is_one_line_naming_it(stub_broker, tmp_path):
    from broker_jobs.scheduling.config import load_config
    from tests.support.scheduling import fake_settings

    @job(name="size_probe", queue="default", broker=stub_broker)
    def size_probe(note: str = "") -> None: ...

    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": [{"id": "huge", "actor": "size_probe", "cron": "@daily",
                                              "kwargs": {"note": "n" * LIMIT}}]}))
    settings = fake_settings(path, max_message_bytes=LIMIT)
    with pytest.raises(ConfigError) as caught:
        load_config(path, settings)
    assert "jobs[0].kwargs" in str(caught.value) and f"MAX_MESSAGE_BYTES={LIMIT}" in str(caught.value)
    assert "\n" not in str(caught.value)
