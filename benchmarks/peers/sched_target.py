"""The actor every Dramatiq-based scheduler fires: bare ``RabbitmqBroker``, no consumer runs.

Nothing consumes it: the scheduler benchmark only counts what lands in the queue.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

QUEUE = os.environ.get("BENCH_SCHED_QUEUE", "bench_sched")

broker = RabbitmqBroker(url=os.environ["BENCH_AMQP_URL"])
dramatiq.set_broker(broker)


def slot_fields(utc: bool = False) -> tuple[int, int, int]:
    """(hour, minute, second) of the slot in ``BENCH_SCHED_SLOT`` (epoch seconds), local time or UTC."""
    import time

    epoch = float(os.environ["BENCH_SCHED_SLOT"])
    slot = time.gmtime(epoch) if utc else time.localtime(epoch)
    return slot.tm_hour, slot.tm_min, slot.tm_sec


def count() -> int:
    """``BENCH_SCHED_N``: how many schedules to declare."""
    return int(os.environ["BENCH_SCHED_N"])
