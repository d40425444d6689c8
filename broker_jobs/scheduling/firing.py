"""Publishing runs outside the schedule: run now and backfill, shared by the CLI, the API and ``RuntimeJobs``.

Each publishes from the calling process (confirmed), through the job's overlap
policy unless forced, and records its slots in the audit trail, as the
scheduler records its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dramatiq.brokers.rabbitmq import RabbitmqBroker

from ..broker import get_broker
from ..clock import utc_now
from ..errors import ConfigError
from ..protocol import FireId
from ..settings import Settings
from ..store.scheduler_state import SchedulerStore, open_scheduler_store
from .control import get_job
from .planning import Planned, plan_flights
from .policies import BACKFILLED, MANUAL, OVERLAP
from .publisher import Publisher
from .triggers import fire_times

if TYPE_CHECKING:
    from dramatiq import Broker

#: The most slots one backfill may publish.
MAX_BACKFILL = 10_000


def declare_queues(broker: Broker, queues: set[str]) -> None:
    """Declare ``queues`` on RabbitMQ through the broker.

    A queue that exists with other arguments is used as it is (:mod:`broker_jobs.topology`).
    """
    for queue in sorted(queues):
        if isinstance(broker, RabbitmqBroker):
            broker.declare_queue(queue, ensure=True)
        else:
            broker.declare_queue(queue)


def _publish(settings: Settings, store: SchedulerStore, plans: list[Planned]) -> None:
    batch = [p.out for p in plans if p.out is not None]
    if batch:
        declare_queues(get_broker(), {o.queue for o in batch})
        publisher = Publisher.for_settings(settings)
        try:
            publisher.publish(batch, int(utc_now().timestamp() * 1000))
        finally:
            publisher.close()
    now = utc_now()
    store.commit(
        token=None, states=[],
        audit=[{"job_id": p.job.id, "slot": p.slot, "outcome": p.outcome,
                "fire_id": p.out.fire_id if p.out else p.superseded, "message_id": p.out.message_id if p.out else None,
                "lag_ms": None, "detail": p.detail, "token": None, "recorded_at": now} for p in plans],
        fires=[{"fire_id": o.fire_id, "job_id": o.job_id, "message_id": o.message_id, "published_at": now}
               for o in batch],
    )
    closed = [p.superseded for p in plans if p.superseded]
    if closed:
        store.close_fires(closed)


def run_now(settings: Settings, job_id: str, force: bool = False) -> dict[str, Any]:
    """Publish one run of the job now, through its overlap policy unless ``force``.

    Returns:
      ``{"id", "fire_id", "message_id"}``, or ``{"id", "skipped": reason}``.
    """
    store = open_scheduler_store(settings.database_url)
    job = get_job(settings, job_id, store)
    now = utc_now()
    plan = Planned(job, now, MANUAL)
    flights = [] if force else store.in_flight([job_id]).get(job_id, [])
    plans = [plan]
    plan_flights(plan, plans, flights, 0)
    if plan.out is not None:  # a manual run is no slot: its fire id says so
        plan.out.fire_id, plan.out.slot = str(FireId.manual(job.id, now)), None
        if force:
            plan.detail = "forced"
    _publish(settings, store, plans)
    if plan.out is None:
        return {"id": job_id, "skipped": plan.detail}
    return {"id": job_id, "fire_id": plan.out.fire_id, "message_id": plan.out.message_id, "queue": job.queue,
            "priority": job.priority.label}


def backfill(settings: Settings, job_id: str, start: datetime, end: datetime, force: bool = False) -> dict[str, Any]:
    """Publish every slot of the job in ``[start, end]``, through its overlap policy unless ``force``.

    A slot that already ran is dropped by the workers' fire-id dedup: backfill
    fills what was missed, it does not repeat what ran.
    """
    store = open_scheduler_store(settings.database_url)
    job = get_job(settings, job_id, store)
    zone = ZoneInfo(job.timezone)
    start, end = (t if t.tzinfo else t.replace(tzinfo=zone) for t in (start, end))
    if end < start:
        raise ConfigError("--to is before --from")
    slots = fire_times(job.trigger, start - timedelta(microseconds=1), end, limit=MAX_BACKFILL + 1)
    if len(slots) > MAX_BACKFILL:
        raise ConfigError(f"more than {MAX_BACKFILL} slots in that range; backfill a shorter one")
    flights = [] if force else store.in_flight([job_id]).get(job_id, [])
    plans: list[Planned] = []
    for slot in slots:
        plan = Planned(job, slot, BACKFILLED)
        plans.append(plan)
        if force:
            plan_flights(plan, plans, [], 0)
        else:
            plan_flights(plan, plans, flights, 0)
    _publish(settings, store, plans)
    published = [p.out.fire_id for p in plans if p.out is not None]
    return {"id": job_id, "slots": len(slots), "published": len(published),
            "skipped_overlap": sum(p.outcome == OVERLAP for p in plans), "fire_ids": published}
