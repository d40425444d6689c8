"""RABBITMQ_URLS on the real RabbitMQ: every kind of client skips a node that does not answer and uses the next."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from dramatiq import Worker

from broker_jobs import dead_letters, job
from broker_jobs.health import check_rabbitmq
from broker_jobs.priorities import Priority
from broker_jobs.queues import queue_stats
from broker_jobs.scheduling.publisher import Outgoing, Publisher
from broker_jobs.settings import get_settings
from tests.framework.integration.test_rabbitmq_jobs import finished_runs
from tests.support import free_port, queue_depth, run_cli, wait_for

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def dead_first(rabbitmq_url: str, settings_env: pytest.MonkeyPatch) -> Iterator[str]:
    """RABBITMQ_URLS with a node that refuses connections first, the real one second."""
    dead = rabbitmq_url.replace("127.0.0.1:5672", f"127.0.0.1:{free_port()}")
    assert dead != rabbitmq_url
    value = f"{dead},{rabbitmq_url}"
    settings_env.setenv("RABBITMQ_URLS", value)
    settings_env.setenv("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2F")  # RABBITMQ_URLS wins
    yield value


def test_the_broker_the_scheduler_publisher_health_stats_and_dead_letters_skip_a_dead_node(dead_first,
                                                                                           rabbitmq_url):
    import dramatiq

    from broker_jobs.broker import build_broker, use_broker

    settings = get_settings()
    assert settings.rabbitmq_url == dead_first.split(",")[0]
    previous = dramatiq.broker.global_broker
    broker = use_broker(build_broker(settings))
    queue, name = f"urls_{uuid.uuid4().hex[:8]}", f"urls_job_{uuid.uuid4().hex[:8]}"
    try:
        assert isinstance(broker.parameters, list) and len(broker.parameters) == 2

        @job(name=name, queue=queue, broker=broker, max_retries=0)
        def work(n: int) -> None:
            if n < 0:
                raise RuntimeError("negative")

        worker = Worker(broker, queues={queue}, worker_threads=1, worker_timeout=100)
        worker.start()
        try:
            work.send(1)
            work.send(-1)
            runs = finished_runs(name, count=2)
        finally:
            worker.stop()
        assert sorted(r.status for r in runs) == ["dead", "succeeded"]
        assert [d.actor for d in dead_letters.list_dead(settings, queue=queue)] == [name]

        publisher = Publisher(settings.amqp_urls)
        try:
            publisher.publish([Outgoing(job_id="j", actor=name, queue=queue, args=(2,), kwargs={},
                                        priority=Priority.LOW, fire_id="j@x", slot=None)], 0)
        finally:
            publisher.close()
        assert queue_depth(rabbitmq_url, queue) == 1
        assert check_rabbitmq(settings, timeout=2).ok
        # The management API's counts lag by a few seconds.
        wait_for(lambda: [(s.ready, s.dead) for s in queue_stats(settings, [queue])] == [(1, 1)],
                 "the queue's depths: 1 ready, 1 dead", timeout=30, every=0.5)
    finally:
        broker.close()
        if previous is not None:
            use_broker(previous)


def test_the_cli_sends_through_the_second_node_when_the_first_is_dead(dead_first, rabbitmq_url):
    sent = run_cli("send", "diagnostics", env={"RABBITMQ_URLS": dead_first,
                                                "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/%2F"})
    assert sent.returncode == 0, sent.stderr
    assert queue_depth(rabbitmq_url, "default") >= 1


def test_no_node_answering_is_one_line_naming_the_variable_and_exit_4():
    urls = ",".join(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F" for _ in range(2))
    sent = run_cli("send", "diagnostics", env={"RABBITMQ_URLS": urls})
    assert sent.returncode == 4, sent.stderr
    assert len(sent.stderr.strip().splitlines()) == 1 and "Traceback" not in sent.stderr
