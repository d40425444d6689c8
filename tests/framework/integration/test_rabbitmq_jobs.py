"""The foundation on a real RabbitMQ: priorities, retries, dead letters, replay.

Also run on the three-node cluster with QUEUE_TYPE=quorum (``make test-cluster``).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest
from dramatiq import Worker

from broker_jobs import dead_letters, job
from broker_jobs.settings import get_settings
from broker_jobs.store.db import get_engine
from broker_jobs.store.history import writer
from broker_jobs.store.queries import query_runs
from tests.support import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.also_on_cluster]


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


def finished_runs(actor: str, count: int = 1):
    def ready():
        writer.flush()
        runs = [r for r in query_runs(get_engine(), actor=actor, limit=1000)
                if r.status not in ("running", "retrying")]
        return runs if len(runs) >= count else None

    return wait_for(ready, f"{count} finished run(s) of {actor}", timeout=20, every=0.05)


def test_a_high_priority_message_overtakes_a_backlog_of_low_ones(rabbit_broker):
    queue, order, lock = unique("prio"), [], threading.Lock()

    @job(name=unique("prio_job"), queue=queue, broker=rabbit_broker)
    def work(label: str) -> None:
        with lock:
            order.append(label)

    for i in range(100):
        work.send_with_options(args=(f"low-{i}",), priority="low")
    work.send_with_options(args=("high",), priority="high")

    worker = Worker(rabbit_broker, queues={queue}, worker_threads=1, worker_timeout=100)
    prefetch = 2  # Dramatiq prefetches 2 x threads
    worker.start()
    try:
        wait_for(lambda: len(order) == 101, "all 101 messages run", timeout=60, every=0.05)
    finally:
        worker.stop()
    assert order.index("high") <= prefetch + 1


def test_retries_back_off_exponentially_and_then_succeed(rabbit_broker):
    name, stamps = unique("flaky"), []

    @job(name=name, queue=unique("retry"), broker=rabbit_broker, max_retries=3, min_backoff=0.2)
    def work() -> None:
        stamps.append(time.monotonic())
        if len(stamps) < 3:
            raise RuntimeError("transient")

    worker = Worker(rabbit_broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        work.send()
        [run] = finished_runs(name)
    finally:
        worker.stop()
    assert run.status == "succeeded" and run.attempt == 3
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # 0.2 s then 0.4 s at least (jitter only lengthens them).
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4


def test_invalid_arguments_are_dead_lettered_listed_and_replayed_after_a_fix(rabbit_broker):
    name, queue, seen = unique("strict"), unique("dlq"), []

    @job(name=name, queue=queue, broker=rabbit_broker, max_retries=3)
    def work(limit: int) -> None:
        seen.append(limit)

    worker = Worker(rabbit_broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        bad = work.send("lots")
        [run] = finished_runs(name)
        assert run.status == "dead" and "argument 'limit'" in run.error

        settings = get_settings()
        [letter] = dead_letters.list_dead(settings, queue=queue)
        assert letter.id == bad.message_id and letter.actor == name
        assert "argument 'limit'" in letter.reason and letter.attempts == 1
        # Listing does not consume: the letter is still there.
        assert [d.id for d in dead_letters.list_dead(settings, queue=queue)] == [bad.message_id]

        [replayed] = dead_letters.replay(settings, id=bad.message_id, queue=queue, kwargs={"limit": 7},
                                         args=[]).replayed
        assert replayed.replayed_as and replayed.replayed_as != bad.message_id
        finished_runs(name, count=2)
        assert seen == [7]
        assert dead_letters.list_dead(settings, queue=queue) == []
    finally:
        worker.stop()


def test_purging_removes_only_the_selected_dead_letters(rabbit_broker):
    name, queue = unique("doomed"), unique("purge")

    @job(name=name, queue=queue, broker=rabbit_broker, max_retries=0)
    def work(n: int) -> None:
        raise RuntimeError(f"broken {n}")

    worker = Worker(rabbit_broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        messages = [work.send(i) for i in range(3)]
        finished_runs(name, count=3)
    finally:
        worker.stop()
    settings = get_settings()
    wait_for(lambda: len(dead_letters.list_dead(settings, queue=queue)) == 3, "three dead letters listed", timeout=20,
             every=0.05)
    [purged] = dead_letters.purge(settings, queue=queue, id=messages[0].message_id)
    assert purged.id == messages[0].message_id
    left = {d.id for d in dead_letters.list_dead(settings, queue=queue)}
    assert left == {m.message_id for m in messages[1:]}
    assert len(dead_letters.purge(settings, queue=queue, everything=True)) == 2
    assert dead_letters.list_dead(settings, queue=queue) == []


def test_an_undecodable_body_is_dead_lettered_and_can_be_purged(rabbit_broker):
    import pika

    from broker_jobs.broker import connection_url

    @job(name=unique("decodable"), queue="default", broker=rabbit_broker)
    def work() -> None: ...

    worker = Worker(rabbit_broker, queues={"default"}, worker_threads=1, worker_timeout=100)
    worker.start()
    settings = get_settings()
    try:
        rabbit_broker.declare_queue("default", ensure=True)
        conn = pika.BlockingConnection(pika.URLParameters(connection_url(settings.rabbitmq_url)))
        conn.channel().basic_publish("", "default", b"\xff not json", pika.BasicProperties(delivery_mode=2))
        conn.close()
        letters = wait_for(lambda: [d for d in dead_letters.list_dead(settings, queue="default")
                                    if d.reason.startswith("undecodable")],
                           "the undecodable body listed as a dead letter", timeout=20, every=0.05)
    finally:
        worker.stop()
    assert letters[0].id.startswith("raw-")
    assert dead_letters.purge(settings, queue="default", id=letters[0].id)


def test_a_delay_longer_than_the_hold_limit_hops_and_runs_once_at_its_time(rabbit_broker):
    name, queue, ran = unique("later"), unique("hop"), []
    rabbit_broker.max_hold_ms = 300  # as if RabbitMQ's consumer timeout were 0.6 s

    @job(name=name, queue=queue, broker=rabbit_broker)
    def work() -> None:
        ran.append(time.time())

    worker = Worker(rabbit_broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        sent_at = time.time()
        work.send_with_options(delay=1500)
        finished_runs(name)
        rabbit_broker.join(queue, timeout=20_000)  # every hop handled: a second run would be in ``ran``
        worker.join()
    finally:
        worker.stop()
    assert len(ran) == 1
    assert ran[0] - sent_at >= 1.5
