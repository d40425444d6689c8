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

A year of a jobs file is hundreds of thousands of slots, so the common case (a job whose every slot fires on time)
keeps its slots as integers (microseconds since the epoch) and :func:`render` prints them without a row object or a
datetime per slot (:mod:`~broker_jobs.scheduling.wall_text`); the slots decided one by one (an outage, a pause,
runs that overlap) are rows, formatted one by one.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from ..protocol import FireId, Flight
from .config import JobDef
from .policies import FIRED, OVERLAP, PAUSED, PUBLISHING, DueSlots, overlap_action, plan_misfire
from .triggers import CronTrigger, fire_micros, offset_changes
from .wall_text import as_datetime, as_micros, local_texts, offset_text, stretches, utc_texts

#: The scheduler's look-back window for one-by-one decisions is ``max(misfire_grace, WINDOW_FLOOR)`` (as in
#: :func:`~broker_jobs.scheduling.planning.plan_job`); older slots are decided as one summary.
WINDOW_FLOOR = 5.0
#: Lines per piece of :func:`render`'s output: few writes, and no string of the whole output.
CHUNK_LINES = 20_000
_encode = json.JSONEncoder(separators=(",", ":")).encode


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

    def table_line(self) -> str:
        """The row as ``jobs simulate`` prints it: local time, job, decision, detail."""
        return f"{self.local:25}  {self.job_id:20}  {self.decision:15}  {self.detail or ''}".rstrip()

    def json_line(self) -> str:
        """The row as ``jobs simulate --json`` prints it: one compact JSON object."""
        return _encode(self.asdict())


@dataclass
class _Played:
    """One job's slots in ``(start, end]``: all fired on time (``rows`` None), or decided one by one (``rows``).

    Attributes:
      job: The job.
      zone: Its wall clock.
      slots: Its slots, microseconds since the epoch, in order.
      notes: What DST did, by slot.
      rows: The rows, in the job's decision order, when the slots are not all fired on time.
    """

    job: JobDef
    zone: ZoneInfo
    slots: Sequence[int]
    notes: dict[int, str]
    rows: list[SimulatedSlot] | None = None

    def fired_rows(self) -> list[SimulatedSlot]:
        """The rows of a job whose slots all fire on time."""
        texts = local_texts(self.slots, stretches(self.job.timezone, self.zone, self.slots))
        get = self.notes.get
        return [SimulatedSlot(self.job.id, at, text, FIRED, at, get(slot))
                for slot, at, text in zip(self.slots, map(as_datetime, self.slots), texts, strict=True)]

    def noted_row(self, slot: int) -> SimulatedSlot:
        """The row of one fired slot that DST touched."""
        at = as_datetime(slot)
        return SimulatedSlot(self.job.id, at, at.astimezone(self.zone).isoformat(), FIRED, at, self.notes[slot])


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

    Returns:
      The rows, ordered by when they are decided, then slot, then job id.
    """
    rows: list[SimulatedSlot] = []
    for played in _play_all(jobs, start, end, down, duration, paused):
        rows += played.fired_rows() if played.rows is None else played.rows
    rows.sort(key=attrgetter("decided_at", "slot", "job_id"))
    return rows


def render(jobs: Iterable[JobDef], start: datetime, end: datetime, *,
           down: Sequence[tuple[datetime, datetime]] = (), duration: float = 0.0,
           paused: Collection[str] = (), as_json: bool = False) -> Iterator[str]:
    """What ``jobs simulate`` prints for :func:`simulate`'s rows, in pieces to write one after the other.

    The table is one :meth:`SimulatedSlot.table_line` a row, then a count of each decision; ``as_json`` one JSON
    array, a :meth:`SimulatedSlot.json_line` a line.  Same parameters as :func:`simulate`.
    """
    played = _play_all(jobs, start, end, down, duration, paused)
    count = len(played)
    ranks = {index: rank for rank, index in enumerate(sorted(range(count), key=lambda i: played[i].job.id))}
    # simulate()'s order, (decided at, slot, job id), by stable sorts: by slot and job id (one small integer a row,
    # slot * count + rank), then, only if an outage decided slots after their time, by when they were decided.
    keys: list[int] = []
    late: dict[int, int] = {}  # row -> when decided, for the rows decided after their slot
    lines: list[str] = []
    decisions: Counter[str] = Counter()
    for index, job in enumerate(played):
        rank = ranks[index]
        if job.rows is not None:
            for row in job.rows:
                if row.decided_at != row.slot:
                    late[len(keys)] = as_micros(row.decided_at)
                keys.append(as_micros(row.slot) * count + rank)
            lines += [row.json_line() if as_json else row.table_line() for row in job.rows]
            decisions.update(row.decision for row in job.rows)
            continue
        keys += [slot * count + rank for slot in job.slots]
        fired = _json_fired(job) if as_json else _table_fired(job)
        for slot in job.notes:
            row = job.noted_row(slot)
            fired[bisect.bisect_left(job.slots, slot)] = row.json_line() if as_json else row.table_line()
        lines += fired
        decisions[FIRED] += len(job.slots)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    if late:
        decided = [key // count for key in keys]  # the slot: decided at it, unless late says otherwise
        for position, at in late.items():
            decided[position] = at
        order.sort(key=decided.__getitem__)
    pieces = (list(map(lines.__getitem__, order[at:at + CHUNK_LINES])) for at in range(0, len(order), CHUNK_LINES))
    if as_json:
        yield "[\n"
        for number, piece in enumerate(pieces):
            yield (",\n" if number else "") + ",\n".join(piece)
        yield "\n]\n"
        return
    for piece in pieces:
        yield "\n".join(piece) + "\n"
    counted = ", ".join(f"{n} {decision}" for decision, n in sorted(decisions.items()) if n)
    yield f"{len(keys)} slot(s): {counted or 'none'}\n"


def _table_fired(job: _Played) -> list[str]:
    """The table lines of a job's slots, all fired on time: ``local`` padded as a row's, then a fixed tail."""
    tail = f"  {job.job.id:20}  {FIRED:15}".rstrip()
    return local_texts(job.slots, stretches(job.job.timezone, job.zone, job.slots), width=25, tail=tail)


def _json_fired(job: _Played) -> list[str]:
    """The JSON lines of a job's slots, all fired on time (the keys in :meth:`SimulatedSlot.asdict`'s order)."""
    head = '{"job_id":' + _encode(job.job.id) + ',"slot":"'
    local = local_texts(job.slots, stretches(job.job.timezone, job.zone, job.slots))
    return [f'{head}{utc}Z","local":"{text}","decision":"{FIRED}","decided_at":"{utc}Z","detail":null}}'
            for utc, text in zip(utc_texts(job.slots), local, strict=True)]


def _play_all(jobs: Iterable[JobDef], start: datetime, end: datetime, down: Sequence[tuple[datetime, datetime]],
              duration: float, paused: Collection[str]) -> list[_Played]:
    outages = sorted((a.astimezone(UTC), b.astimezone(UTC)) for a, b in down)
    return [_play(job, start.astimezone(UTC), end.astimezone(UTC), outages, duration, job.id in paused)
            for job in jobs if job.enabled]


def _play(job: JobDef, start: datetime, end: datetime, outages: list[tuple[datetime, datetime]],
          duration: float, paused: bool) -> _Played:
    slots = fire_micros(job.trigger, start, end)
    zone = ZoneInfo(job.timezone)
    played = _Played(job, zone, slots, _dst_notes(job, zone, slots))
    touched = bool(slots) and any(as_micros(a) <= slots[-1] and as_micros(b) > slots[0] for a, b in outages)
    if touched or paused or (duration != 0 and job.overlap != "allow"):
        played.rows = _decide(played, [as_datetime(slot) for slot in slots], outages, duration, paused)
    return played


def _decide(played: _Played, slots: list[datetime], outages: list[tuple[datetime, datetime]], duration: float,
            paused: bool) -> list[SimulatedSlot]:
    """One row per slot, decided one by one: outages, then the pause and the overlap policy on what publishes."""
    job, zone = played.job, played.zone
    notes = {as_datetime(slot): note for slot, note in played.notes.items()}
    rows: list[SimulatedSlot] = []
    running_until: list[tuple[str, datetime]] = []
    for slot, at, decision, detail in _decide_misfires(job, slots, outages):
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


def _decide_misfires(job: JobDef, slots: list[datetime], outages: list[tuple[datetime, datetime]]
                     ) -> list[tuple[datetime, datetime, str, str | None]]:
    """(slot, decided at, decision, detail) of every slot: fired at its time, or decided when an outage ends."""
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


def _dst_notes(job: JobDef, zone: ZoneInfo, slots: Sequence[int]) -> dict[int, str]:
    """What daylight saving time did to the slots it touched (cron jobs on a zone with DST), by slot."""
    if not isinstance(job.trigger, CronTrigger) or not slots:
        return {}
    notes: dict[int, str] = {}
    changes = offset_changes(job.timezone, as_datetime(slots[0]) - timedelta(seconds=1), as_datetime(slots[-1]))
    for transition, was, offset in changes:
        at = bisect.bisect_left(slots, as_micros(transition))
        if offset > was:
            if at < len(slots):
                slot = slots[at]
                local = as_datetime(slot).astimezone(zone)
                notes[slot] = (f"DST: {local:%H:%M} is the end of the spring-forward gap (the wall times skipped "
                               "ran here once)" if slot == as_micros(transition) else
                               f"DST: spring forward since the previous slot ({offset_text(was)} -> "
                               f"{offset_text(offset)})")
        else:
            repeat_end = as_micros(transition + (was - offset))
            for slot in slots[at:bisect.bisect_left(slots, repeat_end)]:
                notes[slot] = (f"DST: second pass of {as_datetime(slot).astimezone(zone):%H:%M} "
                               f"(fall back, fold={job.trigger.fold})")
            if at < len(slots) and slots[at] not in notes:
                notes[slots[at]] = (f"DST: fall back since the previous slot ({offset_text(was)} -> "
                                    f"{offset_text(offset)})")
    return notes


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
