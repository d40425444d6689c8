"""celery beat: N ``crontab`` entries sending one task, all due at one minute.

``celery -A benchmarks.peers.beat_sched beat -s <file>`` with ``BENCH_SCHED_N``,
``BENCH_SCHED_SLOT`` (a minute boundary: crontab has minute granularity).
"""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import beat_init

from .sched_target import QUEUE, count, slot_fields

app = Celery("bench_beat", broker=os.environ["BENCH_AMQP_URL"])
_hour, _minute, _ = slot_fields(utc=True)
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    timezone="UTC",
    enable_utc=True,
    broker_connection_retry_on_startup=True,
    beat_schedule={
        f"job-{i}": {"task": "bench.target", "schedule": crontab(minute=_minute, hour=_hour), "args": (i,)}
        for i in range(count())
    },
)


@app.task(name="bench.target")
def bench_target(i: int) -> None:
    """Never runs: the benchmark counts messages."""


@beat_init.connect
def _ready(**_kwargs: object) -> None:
    print("[bench] ready", flush=True)
