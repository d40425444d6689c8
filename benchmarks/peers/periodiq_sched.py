"""periodiq: N actors with ``periodic=cron("M H * * *")``, all due at one minute.

``periodiq benchmarks.peers.periodiq_sched`` with ``BENCH_SCHED_N``, ``BENCH_SCHED_SLOT``
(a minute boundary: periodiq has minute granularity).
"""

from __future__ import annotations

import dramatiq
from periodiq import PeriodiqMiddleware, cron

from .sched_target import QUEUE, broker, count, slot_fields

broker.add_middleware(PeriodiqMiddleware(skip_delay=30))

_hour, _minute, _ = slot_fields()


def _declare(i: int) -> None:
    def tick() -> None:
        """Never runs: the benchmark counts messages."""

    dramatiq.actor(tick, actor_name=f"bench_target_{i}", queue_name=QUEUE,
                   periodic=cron(f"{_minute} {_hour} * * *"))


for _i in range(count()):
    _declare(_i)
# periodiq imports this module last, then computes the next slot: close enough to ready.
print("[bench] ready", flush=True)
