"""Bare Dramatiq: ``RabbitmqBroker`` with its default middleware, one no-op actor.

``dramatiq benchmarks.peers.dramatiq_bare -p 2 -t 8``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from . import noop

# BENCH_MAX_PRIORITY=10 declares its queue as broker_jobs does (x-max-priority), to see
# what RabbitMQ's priority queues cost on their own (python -m benchmarks.ablation).
_max_priority = int(os.environ.get("BENCH_MAX_PRIORITY") or 0) or None
broker = RabbitmqBroker(url=os.environ["BENCH_AMQP_URL"], max_priority=_max_priority)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench_dramatiq_prio" if _max_priority else "bench_dramatiq")
def bench_noop(key: str, total: int, sent_at: float = 0.0) -> None:
    """Bump the run's counter."""
    noop.bump(key, total, sent_at)


def sender() -> tuple[Callable[[str, int, float], None], Callable[[], None]]:
    """``bench_noop.send``."""

    def send(key: str, total: int, sent_at: float) -> None:
        bench_noop.send(key, total, sent_at)

    return send, broker.close
