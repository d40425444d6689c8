"""QUEUE_TYPE=quorum on the real RabbitMQ (one node, a vhost of its own): the queues are quorum queues with the
arguments quorum needs, and jobs, retries, dead letters, replay and priorities work as on classic queues.

The tests marked ``also_on_cluster`` run again on the three-node cluster (``make test-cluster``); the others read
the queues back through the management API, which the cluster's nodes do not run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from dramatiq import Worker

from broker_jobs import dead_letters, job
from broker_jobs.settings import get_settings
from tests.framework.integration.test_rabbitmq_jobs import finished_runs
from tests.framework.integration.test_rabbitmq_jobs import (
    test_a_high_priority_message_overtakes_a_backlog_of_low_ones as classic_backlog_test,
)
from tests.support import RABBITMQ_URL, port_open, unavailable, vhost

pytestmark = pytest.mark.rabbitmq


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def quorum_broker(amqp_vhost: str, settings_env: pytest.MonkeyPatch) -> Iterator[object]:
    """A real broker with QUEUE_TYPE=quorum on a vhost of its own, installed as the process's broker."""
    import dramatiq

    from broker_jobs.broker import build_broker, use_broker

    settings_env.setenv("RABBITMQ_URL", amqp_vhost)
    settings_env.setenv("QUEUE_TYPE", "quorum")
    previous = dramatiq.broker.global_broker
    broker = use_broker(build_broker(get_settings()))
    broker.emit_after("process_boot")
    try:
        yield broker
    finally:
        broker.close()
        if previous is not None:
            use_broker(previous)


def queue_types(url: str) -> dict[str, tuple[str, dict[str, object]]]:
    """Each queue of ``url``'s vhost: (type, arguments), from the management API."""
    parts = urlsplit(url)
    response = httpx.get(f"http://{parts.hostname}:15672/api/queues/{quote(unquote(parts.path[1:]), safe='')}",
                         auth=(parts.username or "guest", parts.password or "guest"), timeout=5)
    response.raise_for_status()
    return {q["name"]: (q.get("type"), q.get("arguments", {})) for q in response.json()}


def test_every_queue_of_a_family_is_a_quorum_queue_with_at_least_once_dead_lettering(quorum_broker):
    queue = unique("qq")
    quorum_broker.declare_queue(queue, ensure=True)
    declared = wait_for_queues(get_settings().rabbitmq_url, queue)
    assert set(declared) == {queue, f"{queue}.HQ", f"{queue}.LQ", f"{queue}.DQ", f"{queue}.XQ"}
    for name, (kind, arguments) in declared.items():
        assert kind == "quorum", name
        assert "x-max-priority" not in arguments
        if name.endswith(".XQ"):
            assert "x-dead-letter-routing-key" not in arguments and "x-delivery-limit" not in arguments
        else:
            assert arguments["x-dead-letter-routing-key"] == f"{queue}.XQ"
            assert arguments["x-dead-letter-strategy"] == "at-least-once"
            assert arguments["x-overflow"] == "reject-publish"
            assert arguments["x-delivery-limit"] == get_settings().quorum_delivery_limit


def wait_for_queues(url: str, prefix: str) -> dict[str, tuple[str, dict[str, object]]]:
    from tests.support import wait_for

    return wait_for(lambda: {n: v for n, v in queue_types(url).items() if n.startswith(prefix)}
                    if len([n for n in queue_types(url) if n.startswith(prefix)]) == 5 else None,
                    f"the five queues of {prefix} in the management API", timeout=20, every=0.2)


@pytest.mark.also_on_cluster
def test_a_job_runs_a_failing_one_is_retried_then_dead_lettered_and_replays(quorum_broker):
    ok, flaky, doomed, queue = unique("ok"), unique("flaky"), unique("doomed"), unique("qjobs")
    attempts: list[int] = []

    @job(name=ok, queue=queue, broker=quorum_broker)
    def fine(n: int) -> int:
        return n

    @job(name=flaky, queue=queue, broker=quorum_broker, max_retries=3, min_backoff=0.1, priority="high")
    def transient() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("transient")

    @job(name=doomed, queue=queue, broker=quorum_broker, max_retries=1, min_backoff=0.1, priority="low")
    def broken(n: int) -> None:
        if n < 10:
            raise RuntimeError(f"broken {n}")

    worker = Worker(quorum_broker, queues={queue}, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        fine.send(1)
        transient.send()
        dead = broken.send(3)
        [run] = finished_runs(ok)
        assert run.status == "succeeded"
        [retried] = finished_runs(flaky)
        assert retried.status == "succeeded" and retried.attempt == 3
        [failed] = finished_runs(doomed)
        assert failed.status == "dead"

        settings = get_settings()
        [letter] = dead_letters.list_dead(settings, queue=queue)
        assert letter.id == dead.message_id and "broken 3" in letter.reason
        [replayed] = dead_letters.replay(settings, id=dead.message_id, queue=queue, args=[42], kwargs={}).replayed
        runs = finished_runs(doomed, count=2)
        assert {r.status for r in runs} == {"dead", "succeeded"} and replayed.replayed_as
        assert dead_letters.list_dead(settings, queue=queue) == []
    finally:
        worker.stop()


@pytest.mark.also_on_cluster
def test_the_classic_backlog_test_passes_on_quorum_queues(quorum_broker):
    """With 100 low waiting, a high sent last starts among the first few: the same test as on classic queues."""
    classic_backlog_test(quorum_broker)


@pytest.mark.also_on_cluster
def test_medium_backlog_runs_before_low_and_after_high(quorum_broker):
    queue, order, lock = unique("bands"), [], threading.Lock()

    @job(name=unique("band_job"), queue=queue, broker=quorum_broker)
    def work(label: str) -> None:
        with lock:
            order.append(label)
        time.sleep(0.02)  # a job that takes time: the bands refill the worker's held messages meanwhile

    for i in range(30):
        work.send_with_options(args=(f"low-{i}",), priority="low")
    for i in range(30):
        work.send_with_options(args=(f"medium-{i}",), priority="medium")
    for i in range(5):
        work.send_with_options(args=(f"high-{i}",), priority="high")
    worker = Worker(quorum_broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        from tests.support import wait_for

        wait_for(lambda: len(order) == 65, "all 65 messages run", timeout=60, every=0.05)
    finally:
        worker.stop()
    prefetch = 2
    highs = [order.index(f"high-{i}") for i in range(5)]
    lows = [i for i, label in enumerate(order) if label.startswith("low")]
    mediums = [i for i, label in enumerate(order) if label.startswith("medium")]
    # Each band's consumer prefetches 2: at most that many of a lower band run before the band above empties.
    assert max(highs) < 5 + 2 * prefetch
    assert sum(1 for i in lows if i < max(mediums)) <= prefetch


@pytest.mark.also_on_cluster
def test_a_delayed_message_waits_in_the_family_delay_queue_and_runs_once(quorum_broker):
    name, queue, ran = unique("later"), unique("qdelay"), []

    @job(name=name, queue=queue, broker=quorum_broker, priority="high")
    def work() -> None:
        ran.append(time.time())

    worker = Worker(quorum_broker, queues={queue}, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        sent_at = time.time()
        work.send_with_options(delay=800)
        [run] = finished_runs(name)
    finally:
        worker.stop()
    assert run.status == "succeeded" and len(ran) == 1 and ran[0] - sent_at >= 0.8


def test_classic_queues_become_quorum_queues_through_repair_with_every_message_kept(settings_env):
    """The switch of an existing deploy: QUEUE_TYPE=quorum reports the classic queues as degraded, and
    ``queues repair`` re-creates them as quorum queues; the jobs waiting in them then run."""
    import dramatiq

    from broker_jobs import topology
    from broker_jobs.broker import build_broker, use_broker
    from broker_jobs.repair import repair_queues
    from tests.support import queue_depth, wait_for

    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    queue, name, ran = unique("switch"), unique("switched"), []
    previous = dramatiq.broker.global_broker
    with vhost("bj-switch") as url:
        if url is None:
            unavailable("a vhost of its own on the shared RabbitMQ")
        settings_env.setenv("RABBITMQ_URL", url)
        classic = use_broker(build_broker(get_settings()))
        try:
            @job(name=name, queue=queue, broker=classic)
            def work(n: int) -> None:
                ran.append(n)

            for n in range(50):
                work.send(n)
        finally:
            classic.close()
        assert queue_depth(url, queue) == 50

        settings_env.setenv("QUEUE_TYPE", "quorum")
        get_settings.cache_clear()
        topology.forget()
        settings = get_settings()
        degraded = topology.degraded_queues(settings, queues=[queue], max_age=0)
        assert set(degraded) == {queue, f"{queue}.DQ", f"{queue}.XQ"}
        assert all("not the quorum queue QUEUE_TYPE=quorum asks for" in line
                   and f"broker-jobs queues repair {queue}" in line for line in degraded.values())

        done = {r.queue: r for r in repair_queues(settings, [queue])}
        assert done[queue].moved_out == done[queue].moved_back == 50
        assert topology.degraded_queues(settings, queues=[queue], max_age=0) == {}
        kinds = queue_types(url)
        assert {kinds[q][0] for q in (queue, f"{queue}.DQ", f"{queue}.XQ")} == {"quorum"}

        quorum = use_broker(build_broker(settings))
        try:
            work = job(name=name, queue=queue, broker=quorum)(lambda n: ran.append(n))
            worker = Worker(quorum, queues={queue}, worker_threads=2, worker_timeout=100)
            worker.start()
            try:
                wait_for(lambda: len(ran) >= 50, "the 50 waiting jobs to run on the quorum queue", timeout=30,
                         every=0.05)
            finally:
                worker.stop()
        finally:
            quorum.close()
            if previous is not None:
                use_broker(previous)
    assert sorted(ran) == list(range(50))
