"""The jobs file played on a virtual clock: every slot between two instants and what the scheduler decides for it.

Pure: nothing here reads a clock, a database or RabbitMQ.  The decisions are the scheduler's own functions
(:func:`~broker_jobs.scheduling.policies.plan_misfire` for the misfire policy, the look-back window of
:func:`~broker_jobs.scheduling.planning.collect_due`, :func:`~broker_jobs.scheduling.policies.overlap_action` for
the overlap policy), applied to a model of the fleet:

* the scheduler runs except during the ``down`` windows; the slots of a window are decided when it ends, as a
  restarted scheduler decides them (``missed``, ``caught_up``, ``skipped_stale``);
* a published run starts at once and lasts ``duration`` seconds (0: runs never overlap);
* a job in ``paused`` records its slots ``paused``.

Daylight saving time is marked on the slots it touches: a cron slot moved to the end of a spring-forward gap, the
first slot after a gap whose wall times were skipped, the second pass of a repeated hour.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from ..protocol import FireId, Flight
from .config import JobDef
from .policies import FIRED, OVERLAP, PAUSED, PUBLISHING, DueSlots, overlap_action, plan_misfire
from .triggers import CronTrigger, fire_times, offset_changes

#: The scheduler's look-back window for one-by-one decisions is ``max(misfire_grace, WINDOW_FLOOR)`` (as in
#: :func:`~broker_jobs.scheduling.planning.plan_job`); older slots are decided as one summary.
WINDOW_FLOOR = 5.0


class SimulatedSlot(NamedTuple):
    """One slot of one job and its decision.

    Attributes:
      job_id: The schedule id.
      slot: The slot (UTC).
      local: The slot on the job's wall clock, with its offset.
      decision: ``fired``, ``caught_up``, ``missed``, ``skipped_stale``, ``skipped_overlap`` or ``paused``.
      decided_at: When the scheduler decides it: the slot, or the end of the outage it fell in.
      detail: Why, when it is not plain: the outage, the runs in flight, a DST shift.
    """

    job_id: str
    slot: datetime
    local: str
    decision: str
    decided_at: datetime
    detail: str | None = None

    def asdict(self) -> dict[str, Any]:
        """As JSON-ready values (times in ISO 8601)."""
        return {"job_id": self.job_id, "slot": _iso(self.slot), "local": self.local, "decision": self.decision,
                "decided_at": _iso(self.decided_at), "detail": self.detail}


def simulate(jobs: Iterable[JobDef], start: datetime, end: datetime, *,
             down: Sequence[tuple[datetime, datetime]] = (), duration: float = 0.0,
             paused: Collection[str] = ()) -> list[SimulatedSlot]:
    """Every slot of ``jobs`` in ``(start, end]`` with its decision, in time order.

    Parameters:
      jobs: The jobs (disabled ones are left out, as the scheduler leaves them).
      start: Exclusive lower bound (aware).
      end: Inclusive upper bound (aware).
      down: Outages of the scheduler, ``(from, to)`` pairs (aware, ``from < to``).
      duration: Seconds each published run lasts (for the overlap policy).
      paused: Ids of the jobs paused for the whole span.
    """
    outages = sorted((a.astimezone(UTC), b.astimezone(UTC)) for a, b in down)
    rows: list[SimulatedSlot] = []
    for job in jobs:
        if job.enabled:
            rows += _play(job, start.astimezone(UTC), end.astimezone(UTC), outages, duration, job.id in paused)
    rows.sort(key=attrgetter("decided_at", "slot", "job_id"))
    return rows


def _play(job: JobDef, start: datetime, end: datetime, outages: list[tuple[datetime, datetime]],
          duration: float, paused: bool) -> list[SimulatedSlot]:
    slots = fire_times(job.trigger, start, end)
    decided = _decide_misfires(job, slots, outages)
    zone = ZoneInfo(job.timezone)
    notes = _dst_notes(job, zone, slots)
    if decided is None and not paused and (duration == 0 or job.overlap == "allow"):
        # The common case: the scheduler up throughout, nothing in flight, nothing paused: every slot fires.
        local = _local_times(zone, slots)
        get = notes.get
        return [SimulatedSlot(job.id, slot, text, FIRED, slot, get(slot))
                for slot, text in zip(slots, local, strict=True)]
    rows: list[SimulatedSlot] = []
    running_until: list[tuple[str, datetime]] = []
    for slot, at, decision, detail in decided or [(slot, slot, FIRED, None) for slot in slots]:
        if decision in PUBLISHING:
            running_until = [(fire, until) for fire, until in running_until if until > at]
            flights = [Flight(fire, queued=False) for fire, _ in running_until]
            if paused:
                decision, detail = PAUSED, "paused"
            elif overlap_action(job.overlap, flights) == "skip":
                decision = OVERLAP
                detail = f"{len(flights)} run(s) in flight (overlap: {job.overlap}, runs of {duration:g} s)"
            elif duration > 0:
                running_until.append((str(FireId.make(job.id, slot)), at + timedelta(seconds=duration)))
        dst = notes.get(slot)
        rows.append(SimulatedSlot(job.id, slot, slot.astimezone(zone).isoformat(), decision, at,
                                  "; ".join(d for d in (detail, dst) if d) or None))
    return rows


def _local_times(zone: ZoneInfo, slots: list[datetime]) -> list[str]:
    """Each slot on ``zone``'s wall clock (ISO 8601 with its offset): one offset per stretch between transitions."""
    if not slots:
        return []
    if offset_changes(zone.key, slots[0], slots[-1]):
        return [slot.astimezone(zone).isoformat() for slot in slots]
    offset = _offset_at(zone, slots[0])
    suffix = _offset(offset)
    return [(slot + offset).replace(tzinfo=None).isoformat() + suffix for slot in slots]


def _decide_misfires(job: JobDef, slots: list[datetime], outages: list[tuple[datetime, datetime]]
                     ) -> list[tuple[datetime, datetime, str, str | None]] | None:
    """(slot, decided at, decision, detail) of every slot; None when no outage touches them (all fire on time)."""
    if not slots or not any(a <= slots[-1] and b > slots[0] for a, b in outages):
        return None
    decided: list[tuple[datetime, datetime, str, str | None]] = []
    i = 0
    for down_from, back in outages:
        first = bisect.bisect_left(slots, down_from, lo=i)
        decided += [(s, s, FIRED, None) for s in slots[i:first]]
        i = bisect.bisect_left(slots, back, lo=first)
        note = f"scheduler down from {_iso(down_from)} to {_iso(back)}"
        decided += [(s, back, outcome, note) for s, outcome in _after_outage(job, slots[first:i], back)]
    decided += [(s, s, FIRED, None) for s in slots[i:]]
    return decided


def _after_outage(job: JobDef, group: list[datetime], back: datetime) -> list[tuple[datetime, str]]:
    """The decisions a scheduler back at ``back`` takes for ``group`` (the slots it missed), one per slot."""
    cutoff = back - timedelta(seconds=max(job.misfire_grace, WINDOW_FLOOR))
    older = [s for s in group if s < cutoff]
    due = DueSlots(recent=[s for s in group if s >= cutoff], older_count=len(older),
                   older_first=older[0] if older else None, older_last=older[-1] if older else None)
    each: dict[datetime, str] = {}
    summary: str | None = None
    for slot, outcome, detail in plan_misfire(due, back, job.misfire, job.misfire_grace):
        if detail is not None and slot == due.older_first:
            summary = outcome  # the older slots, decided as one
        else:
            each[slot] = outcome
    return [(s, each.get(s) or summary or FIRED) for s in group]


def _dst_notes(job: JobDef, zone: ZoneInfo, slots: list[datetime]) -> dict[datetime, str]:
    """What daylight saving time did to the slots it touched (cron jobs on a zone with DST), by slot."""
    if not isinstance(job.trigger, CronTrigger) or not slots:
        return {}
    notes: dict[datetime, str] = {}
    for transition, was, offset in offset_changes(job.timezone, slots[0] - timedelta(seconds=1), slots[-1]):
        at = bisect.bisect_left(slots, transition)
        if offset > was:
            if at < len(slots):
                slot = slots[at]
                local = slot.astimezone(zone)
                notes[slot] = (f"DST: {local:%H:%M} is the end of the spring-forward gap (the wall times skipped "
                               "ran here once)" if slot == transition else
                               f"DST: spring forward since the previous slot ({_offset(was)} -> {_offset(offset)})")
        else:
            repeat_end = transition + (was - offset)
            for slot in slots[at:bisect.bisect_left(slots, repeat_end)]:
                notes[slot] = f"DST: second pass of {slot.astimezone(zone):%H:%M} (fall back, fold={job.trigger.fold})"
            if at < len(slots) and slots[at] not in notes:
                notes[slots[at]] = f"DST: fall back since the previous slot ({_offset(was)} -> {_offset(offset)})"
    return notes


def _offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _offset(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
