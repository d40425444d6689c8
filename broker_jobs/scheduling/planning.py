"""Planning a tick: which slots are due, and what each one becomes under the job's policies.

Pure apart from :func:`supersede`, which claims a queued run's fire id so that
the workers' dedup drops it (the ``replace`` overlap policy).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

from ..coordination import get_claims
from ..protocol import Flight
from .config import JobDef
from .policies import MISSED, OVERLAP, PAUSED, PUBLISHING, SUPERSEDED, DueSlots, overlap_action, plan_misfire
from .publisher import Outgoing, fire_id, iso
from .triggers import Trigger, min_gap, next_fire

logger = logging.getLogger("broker_jobs.scheduling.scheduler")

#: Slots older than a job's look-back window are counted, not listed one by one.
MAX_RECENT = 100_000



class _Later(Enum):
    LATER = "later"


#: What :func:`collect_due` returns for the following slot when it left it to be computed
#: later, after the publish (``next_fire`` of the last due slot).
LATER: Final = _Later.LATER


@dataclass
class Planned:
    """One slot's decision in a tick (and its message, when it publishes)."""

    job: JobDef
    slot: datetime | None
    outcome: str
    detail: str | None = None
    out: Outgoing | None = None
    superseded: str | None = None


def collect_due(trigger: Trigger, last: datetime, now: datetime, window: float,
                first: datetime | None = None) -> tuple[DueSlots, datetime | _Later | None]:
    """The slots in ``(last, now]`` (within ``window`` seconds of ``now`` one by one, the rest counted),
    and the first slot after ``now``, or :data:`LATER` when that is ``next_fire`` of the one due slot.

    Parameters:
      first: The first slot after ``last``, when already known (the heap has it).
    """
    due = DueSlots()
    cutoff = now - timedelta(seconds=window)
    slot = first if first is not None else next_fire(trigger, last)
    while slot is not None and slot < cutoff:
        due.older_count += 1
        due.older_first = due.older_first or slot
        due.older_last = slot
        if due.older_count >= 1_000_000:  # years of a per-second schedule: jump to the window
            slot = next_fire(trigger, cutoff)
            break
        slot = next_fire(trigger, slot)
    if slot is not None and slot <= now and due.older_count == 0 and (now - slot).total_seconds() < min_gap(trigger):
        # The usual tick: one slot due, and the next cannot be due yet. Computing it is left
        # for after the publish, out of the slot's lag.
        due.recent.append(slot)
        return due, LATER
    while slot is not None and slot <= now and len(due.recent) < MAX_RECENT:
        due.recent.append(slot)
        slot = next_fire(trigger, slot)
    return due, slot


def supersede(old_fire_id: str, new_fire_id: str) -> bool:
    """Claim ``old_fire_id`` so the workers' dedup drops its message; False if it already started."""
    owner = f"superseded by {new_fire_id}"
    return get_claims().claim("fire:" + old_fire_id, owner, 7 * 86400) == owner


def plan_flights(plan: Planned, plans: list[Planned], flights: list[Flight], delay_ms: int) -> None:
    """Apply the job's overlap policy to a slot about to fire; give it its message if it fires."""
    job = plan.job
    action = overlap_action(job.overlap, flights)
    if action == "skip":
        busy = flights[-1]
        plan.outcome = OVERLAP
        plan.detail = f"previous run {busy.fire_id} still {'queued' if busy.queued else 'running'}"
        return
    new_id = fire_id(job.id, plan.slot) if plan.slot is not None else ""
    if action == "replace":
        for flight in [f for f in flights if f.queued]:
            earlier = next((p for p in plans if p.out is not None and p.out.fire_id == flight.fire_id), None)
            if earlier is not None:  # fired in this very tick: simply not published
                earlier.out, earlier.outcome, earlier.detail = None, SUPERSEDED, f"replaced by {new_id}"
            elif supersede(flight.fire_id, new_id):
                plans.append(Planned(job, None, SUPERSEDED, f"replaced by {new_id}", superseded=flight.fire_id))
            flights.remove(flight)
    plan.out = Outgoing(job_id=job.id, actor=job.actor, queue=job.queue, args=job.args, kwargs=job.kwargs,
                        priority=job.priority, fire_id=new_id, slot=plan.slot, delay_ms=delay_ms)
    flights.append(Flight(new_id, queued=True))


def log_outcome(plan: Planned, lag: float) -> None:
    """One line per slot: ``[scheduler] job etl-high fired slot ... (priority high, lag 12 ms)``."""
    job, out = plan.job, plan.out
    slot = iso(plan.slot) if plan.slot is not None else "-"
    if out is not None:
        delay = f", jitter {out.delay_ms} ms" if out.delay_ms else ""
        logger.info("[scheduler] job %s %s slot %s (priority %s, lag %d ms%s, message %s)", job.id,
                    plan.outcome.replace("_", " "), slot, job.priority.label, lag * 1000, delay, out.message_id)
    elif plan.outcome == MISSED:
        logger.warning("[scheduler] job %s missed slot %s%s", job.id, slot, f" ({plan.detail})" if plan.detail else "")
    else:
        logger.info("[scheduler] job %s %s slot %s%s", job.id, plan.outcome.replace("_", " "), slot,
                    f": {plan.detail}" if plan.detail else "")


def jitter_ms(job: JobDef) -> int:
    """A random delay within the job's ``jitter`` seconds, in milliseconds."""
    return int(random.uniform(0, job.jitter) * 1000) if job.jitter else 0


def plan_job(job: JobDef, last: datetime, now: datetime, flights: list[Flight], first: datetime,
             paused: bool = False, pause_note: str | None = None) -> tuple[list[Planned], datetime | _Later | None]:
    """Decide one job's due slots in a tick: misfire policy, then pause, then overlap policy.

    Parameters:
      job: The job.
      last: Its last slot (the tick looks at the slots after it).
      now: The tick's time.
      flights: Its runs in flight (updated with the ones this tick fires).
      first: Its first slot after ``last`` (from the due heap).
      paused: The job is paused: its slots are recorded ``paused``.
      pause_note: The pause's note (the slots' detail).

    Returns:
      The decisions, and the job's next slot after ``now`` (:data:`LATER`: computed when it is pushed).
    """
    due, following = collect_due(job.trigger, last, now, max(job.misfire_grace, 5.0), first)
    plans: list[Planned] = []
    for slot, outcome, detail in plan_misfire(due, now, job.misfire, job.misfire_grace):
        plan = Planned(job, slot, outcome, detail)
        plans.append(plan)
        if outcome not in PUBLISHING:
            continue
        if paused:
            plan.outcome, plan.detail = PAUSED, pause_note
            continue
        plan_flights(plan, plans, flights, jitter_ms(job))
    return plans, following
