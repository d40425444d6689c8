"""Fault 2: a worker SIGKILLed mid-batch loses nothing, and idempotent effects appear once."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support import Producer, dead_keys, effects, fault_message, tally, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.also_on_cluster]

JOBS = 300


def test_a_worker_killed_mid_batch_has_its_unacked_messages_completed_elsewhere_once_each(
        workers, producer_broker, fault_db, vhost_url):
    keys = [f"kill-{i}" for i in range(JOBS)]
    producer = Producer(producer_broker)
    for key in keys:
        # The effect is committed 150 ms before the job returns: a kill in that window
        # leaves a message whose effect exists but which RabbitMQ must deliver again.
        producer.send(fault_message("record_effect", key, then_ms=150))
    doomed = workers(processes=1, threads=4, wait=False)
    survivor = workers(processes=1, threads=4, wait=False)
    doomed.ready(), survivor.ready()
    wait_for(lambda: len(effects(fault_db)) >= JOBS // 4, "a quarter of the batch to run")

    [victim] = doomed.children()
    os.kill(victim, signal.SIGKILL)
    doomed.kill()

    wait_for(lambda: len(effects(fault_db)) == JOBS, "the survivor to complete the batch", timeout=120)
    survivor.stop()
    done = effects(fault_db)
    result = tally("worker SIGKILL mid-batch", keys, done, dead_keys(vhost_url), reported=producer.reported,
                   ran_twice=sum(1 for runs in done.values() if runs > 1))
    assert (result.lost, result.dead_lettered, result.executed) == (0, 0, JOBS)
    # The kill hit jobs whose effect was committed but not acknowledged: they ran again,
    # and the upsert kept one row each.
    assert result.extra["ran_twice"] >= 1
    assert max(done.values()) <= 2
