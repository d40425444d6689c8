"""A message is never held unacked longer than RabbitMQ's consumer timeout.

The private node gets a 5 s ``consumer_timeout`` at run time; the workers are
told (``CONSUMER_TIMEOUT=5``), so delays and backoffs longer than that hop
through the delay queue in pieces of at most 2.5 s.  Delayed, jittered and
retried jobs then run exactly once, never before their time.
"""

from __future__ import annotations

import random
import time

import pytest
import sqlalchemy

from tests.support import Producer, dead_keys, effect_times, fault_message, tally, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.also_on_cluster]

CONSUMER_TIMEOUT_MS = 5_000


def history(url: str) -> dict[str, tuple[str, int]]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT message_id, status, attempt FROM job_runs")
            return {message_id: (status, attempt) for message_id, status, attempt in rows}
    finally:
        engine.dispose()


def test_delays_jitter_and_backoffs_longer_than_the_consumer_timeout_run_once_at_their_time(
        rabbit, workers, producer_broker, fault_db, vhost_url):
    rabbit.set_consumer_timeout(CONSUMER_TIMEOUT_MS)  # channels opened from now on
    group = workers(processes=1, threads=2, CONSUMER_TIMEOUT="5", JOB_TIMEOUT="1")
    producer = Producer(producer_broker)
    due: dict[str, float] = {}

    def send_later(key: str, delay_ms: int) -> None:
        due[key] = time.time() + delay_ms / 1000
        producer.send(fault_message("record_effect", key), delay=delay_ms)

    send_later("delayed-12s", 12_000)
    for i in range(4):
        send_later(f"jittered-{i}", random.randint(6_000, 12_000))
    retried = fault_message("fail_once_then_record", "retried-after-6-to-12s")
    producer.send(retried)

    keys = [*due, "retried-after-6-to-12s"]
    wait_for(lambda: set(effect_times(fault_db)) >= set(keys), "every job to run", timeout=90)
    # Not a wait: a copy redelivered after a consumer-timeout close would come due at the same time, and only
    # time shows its absence: give it two more consumer timeouts to show up.
    time.sleep(2 * CONSUMER_TIMEOUT_MS / 1000)

    done = effect_times(fault_db)
    result = tally("consumer timeout 5 s: delays, jitter, backoff", keys, {k: v[0] for k, v in done.items()},
                   dead_keys(vhost_url), reported=producer.reported,
                   ran_early=sum(1 for k, when in due.items() if done[k][1] < when))
    assert (result.lost, result.dead_lettered, result.executions) == (0, 0, len(keys))
    assert result.extra["ran_early"] == 0
    assert history(fault_db)[retried.message_id] == ("succeeded", 2)
    log = group.text()
    assert "acknowledgement timed out" not in log and "PRECONDITION_FAILED" not in log
