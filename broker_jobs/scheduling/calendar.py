"""The schedule ahead: every slot of every job in a window, with its DST marks (pure time math).

The console's calendar shows the next 24 hours or 7 days.  Slots come from
:func:`~broker_jobs.scheduling.triggers.fire_times`, the scheduler's own time math, so the calendar
shows what the scheduler will fire.  A cron job whose zone changes its offset in the window gets a
mark where the change touches its wall times:

* spring forward, a matched wall time that does not exist: ``shifted`` (``gap: shift``: it fires
  once at the transition) or ``skipped`` (``gap: skip``: it does not fire);
* fall back, a matched wall time that happens twice: ``repeated`` (``fold: twice``: it fires on
  both passes) or ``once`` (``fold: once``: only on the first).

A paused or disabled job's slots are listed but marked, since they will not fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .config import JobDef
from .cron import next_wall_match, parse_cron
from .triggers import CronTrigger, fire_times, offset_changes

#: At most this many slots are computed per job and window (a job every second has 604,800 in a week).
MAX_SLOTS = 2000


@dataclass(frozen=True)
class Mark:
    """A DST transition that changes when a job fires.

    Attributes:
      at: The transition instant (aware UTC).
      kind: ``shifted``, ``skipped``, ``repeated`` or ``once``.
      wall: The local wall time the cron expression matched in the gap or the repeat.
      note: One sentence for people.
    """

    at: datetime
    kind: str
    wall: str
    note: str


@dataclass(frozen=True)
class JobWindow:
    """One job's slots in a window (at most :data:`MAX_SLOTS`; ``truncated`` says if there were more)."""

    job: JobDef
    slots: list[datetime]
    truncated: bool
    paused: bool
    note: str | None
    marks: list[Mark] = field(default_factory=list)


def dst_marks(trigger: CronTrigger, start: datetime, end: datetime) -> list[Mark]:
    """The marks of ``trigger``'s DST transitions in ``(start, end]``."""
    spec = parse_cron(trigger.expression)
    marks: list[Mark] = []
    for instant, old, new in offset_changes(trigger.timezone, start, end):
        if new > old:  # spring forward: the wall times [instant + old, instant + new) never happen
            first = (instant + old).replace(tzinfo=None)
            last = (instant + new).replace(tzinfo=None)
        else:  # fall back: [instant + new, instant + old) happen twice
            first = (instant + new).replace(tzinfo=None)
            last = (instant + old).replace(tzinfo=None)
        match = next_wall_match(spec, first, inclusive=True)
        if match is None or match >= last:
            continue
        wall = match.strftime("%H:%M")
        if new > old and trigger.gap == "shift":
            marks.append(Mark(instant, "shifted", wall, f"{wall} does not exist on this day: fires once when the "
                                                        "clocks go forward"))
        elif new > old:
            marks.append(Mark(instant, "skipped", wall, f"{wall} does not exist on this day: skipped (gap: skip)"))
        elif trigger.fold == "twice":
            marks.append(Mark(instant, "repeated", wall, f"{wall} happens twice on this day: fires on both passes"))
        else:
            marks.append(Mark(instant, "once", wall, f"{wall} happens twice on this day: fires on the first pass "
                                                     "only"))
    return marks


def window(jobs: list[JobDef], paused: dict[str, str | None], start: datetime, end: datetime) -> list[JobWindow]:
    """Every job's slots in ``(start, end]`` with its DST marks.

    Parameters:
      jobs: The schedules.
      paused: The paused jobs' ids, each with its note.
      start: Exclusive, aware.
      end: Inclusive, aware.
    """
    windows: list[JobWindow] = []
    for job in jobs:
        slots = fire_times(job.trigger, start, end, limit=MAX_SLOTS + 1) if job.enabled else []
        marks = dst_marks(job.trigger, start, end) if isinstance(job.trigger, CronTrigger) else []
        windows.append(JobWindow(job, slots[:MAX_SLOTS], len(slots) > MAX_SLOTS, job.id in paused,
                                 paused.get(job.id), marks))
    return windows


def span(days: int, now: datetime) -> tuple[datetime, datetime, timedelta]:
    """The window of ``days`` from ``now`` and its bucket (an hour for a day, a day for longer)."""
    return now, now + timedelta(days=days), timedelta(hours=1) if days <= 1 else timedelta(days=1)


