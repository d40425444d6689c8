"""Celery: RabbitMQ broker, no result backend, prefork pool; ``BENCH_CELERY_ACKS_LATE=1``
acknowledges after the task instead of before it.

``celery -A benchmarks.peers.celery_app worker -P prefork -c 2 -Q bench_celery``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from celery import Celery

from . import noop

#: BENCH_CELERY_ACKS_LATE=1: acknowledge after the task (the delivery guarantee broker_jobs gives).
ACKS_LATE = os.environ.get("BENCH_CELERY_ACKS_LATE") == "1"

app = Celery("bench", broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_ignore_result=True,
    task_acks_late=ACKS_LATE,
    task_default_queue="bench_celery_late" if ACKS_LATE else "bench_celery",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def bench_noop(key: str, total: int, sent_at: float = 0.0) -> None:
    """Bump the run's counter."""
    noop.bump(key, total, sent_at)


def sender() -> tuple[Callable[[str, int, float], None], Callable[[], None]]:
    """``bench_noop.delay`` over one pooled producer connection."""

    def send(key: str, total: int, sent_at: float) -> None:
        bench_noop.delay(key, total, sent_at)

    return send, app.close
