"""Misfire and overlap policies as pure functions of slots, ``now`` and runs in flight.

Misfire (the scheduler was down, or late):

* ``skip``: late slots are recorded ``missed``; only on-time slots fire.
* ``run_once`` (default): late slots are coalesced into one run: the latest
  fires as ``caught_up`` (however late), the others are ``missed``.
* ``run_all``: every late slot within ``misfire_grace`` fires as ``caught_up``;
  older ones are ``skipped_stale``.

Overlap (a previous run of the job is still queued or running in the fleet):

* ``allow``: fire anyway.
* ``skip`` (default): record ``skipped_overlap``.
* ``buffer_one``: fire if nothing is queued yet behind the running one.
* ``replace``: supersede the queued runs (they are dropped by the workers), fire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..protocol import Flight, PublishOutcome, SlotOutcome

#: A slot handled within this many seconds is on time (a tick's own work is not lateness).
LATE_AFTER = 2.0
# The slot outcomes of broker_jobs.protocol, as the plain strings the audit rows and metrics hold.
FIRED, CAUGHT_UP, BACKFILLED, MANUAL = (o.value for o in (
    SlotOutcome.FIRED, SlotOutcome.CAUGHT_UP, SlotOutcome.BACKFILLED, SlotOutcome.MANUAL))
MISSED, STALE, OVERLAP, SUPERSEDED, PAUSED = (o.value for o in (
    SlotOutcome.MISSED, SlotOutcome.SKIPPED_STALE, SlotOutcome.SKIPPED_OVERLAP, SlotOutcome.SUPERSEDED,
    SlotOutcome.PAUSED))
#: Outcomes that publish a message.
PUBLISHING = tuple(o.value for o in PublishOutcome)


@dataclass
class DueSlots:
    """The slots of one job in ``(last_slot, now]``, with the late ones summarized.

    Parameters:
      recent: Slots within the look-back window, oldest first.
      older_count: Slots before the window (only counted).
      older_first: The first of them.
      older_last: The last of them.
    """

    recent: list[datetime] = field(default_factory=list)
    older_count: int = 0
    older_first: datetime | None = None
    older_last: datetime | None = None


def _summary(due: DueSlots, outcome: str, count: int | None = None,
             last: datetime | None = None) -> list[tuple[datetime, str, str | None]]:
    count = due.older_count if count is None else count
    last = last or due.older_last
    if not count or due.older_first is None or last is None:
        return []
    detail = f"{count} slot(s) from {iso_utc(due.older_first)} to {iso_utc(last)}"
    return [(due.older_first, outcome, detail)]


def iso_utc(value: datetime) -> str:
    """``value`` as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return f"{value:%Y-%m-%dT%H:%M:%S}Z"


def plan_misfire(due: DueSlots, now: datetime, policy: str, grace: float,
                 late_after: float = LATE_AFTER) -> list[tuple[datetime, str, str | None]]:
    """Decide what happens to each due slot.

    Parameters:
      due: The slots (recent ones one by one, older ones summarized).
      now: The tick's time.
      policy: ``skip``, ``run_once`` or ``run_all``.
      grace: ``misfire_grace`` seconds (``run_all``).
      late_after: Seconds after which a slot is late.

    Returns:
      ``(slot, outcome, detail)`` in slot order; the older slots as one summary row.
    """
    on_time = [s for s in due.recent if now - s <= timedelta(seconds=late_after)]
    late = [s for s in due.recent if now - s > timedelta(seconds=late_after)]
    out: list[tuple[datetime, str, str | None]] = []
    if policy == "run_all":
        out += _summary(due, STALE)
        for slot in late:
            out.append((slot, CAUGHT_UP if now - slot <= timedelta(seconds=grace) else STALE, None))
    elif policy == "run_once" and late:
        out += _summary(due, MISSED)
        out += [(s, MISSED, None) for s in late[:-1]]
        out.append((late[-1], CAUGHT_UP, None))
    elif policy == "run_once" and due.older_last is not None:
        # Only older slots: the latest of them runs, the others are missed.
        out += _summary(due, MISSED, due.older_count - 1, due.older_last)
        out.append((due.older_last, CAUGHT_UP, None))
    else:
        out += _summary(due, MISSED)
        out += [(s, MISSED, None) for s in late]
    out += [(s, FIRED, None) for s in on_time]
    return out


def overlap_action(policy: str, flights: Sequence[Flight]) -> str:
    """What to do with a slot about to fire, given the job's runs in flight.

    Returns:
      ``fire``, ``skip`` or ``replace`` (supersede the queued flights, then fire).
    """
    if policy == "allow" or not flights:
        return "fire"
    if policy == "buffer_one":
        return "skip" if any(f.queued for f in flights) else "fire"
    if policy == "replace":
        return "replace" if any(f.queued for f in flights) else "fire"
    return "skip"
