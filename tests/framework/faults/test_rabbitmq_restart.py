"""Fault 1: RabbitMQ restarted (stop_app, start_app) under load: everybody reconnects, 0 lost."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support import Producer, dead_keys, effects, fault_message, tally, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.mark.parametrize("count", [2_000, pytest.param(10_000, marks=[pytest.mark.soak, pytest.mark.timeout(1800)])])
def test_a_rabbitmq_restart_under_load_loses_nothing_and_everybody_reconnects_alone(
        count, rabbit, workers, producer_broker, fault_db, vhost_url):
    group = workers(processes=2, threads=4)
    pids = group.children()
    keys = [f"restart-{i}" for i in range(count)]
    producer = Producer(producer_broker)
    published: list[str] = []

    def publish() -> None:
        for key in keys:
            producer.send(fault_message("record_effect", key))
            published.append(key)

    thread = threading.Thread(target=publish, name="producer")
    thread.start()
    wait_for(lambda: len(published) >= count // 3 and effects(fault_db), "a third of the messages to go out",
             every=0.05)
    rabbit.stop_app()
    in_flight_at_stop = len(published)
    time.sleep(5)  # not a wait: the outage, five seconds with the producer and the workers cut off, is the fault
    rabbit.start_app()
    thread.join(timeout=300)
    assert not thread.is_alive(), "the producer never finished"

    wait_for(lambda: len(effects(fault_db)) >= count, "every message to be executed", timeout=240)
    result = tally(f"RabbitMQ restart under load ({count})", keys, effects(fault_db), dead_keys(vhost_url),
                   reported=producer.reported, published_before_stop=in_flight_at_stop)
    assert (result.lost, result.dead_lettered, result.executed) == (0, 0, count)
    # The same worker processes reconnected by themselves: none was restarted.
    assert group.children() == pids
    assert "Restarting consumer in" in group.text()
