"""APScheduler 3: ``BlockingScheduler`` with N cron jobs calling ``actor.send()``, all due at one second.

``python -m benchmarks.peers.aps_sched`` with ``BENCH_SCHED_N``, ``BENCH_SCHED_SLOT``.
``misfire_grace_time`` is raised from its 1 s default to 60 s, or most of a
large burst would be dropped as misfired instead of published late.
"""

from __future__ import annotations

import logging

import dramatiq
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from .sched_target import QUEUE, count, slot_fields


@dramatiq.actor(queue_name=QUEUE, actor_name="bench_target")
def bench_target(i: int) -> None:
    """Never runs: the benchmark counts messages."""


def main() -> None:
    """Declare the jobs and block."""
    logging.basicConfig(level=logging.WARNING)
    hour, minute, second = slot_fields()
    scheduler = BlockingScheduler(job_defaults={"misfire_grace_time": 60, "coalesce": True})
    trigger = CronTrigger(hour=hour, minute=minute, second=second)
    for i in range(count()):
        scheduler.add_job(bench_target.send, trigger, args=[i], id=f"job-{i}")
    scheduler.add_listener(lambda _event: print("[bench] ready", flush=True), EVENT_SCHEDULER_STARTED)
    scheduler.start()


if __name__ == "__main__":
    main()
