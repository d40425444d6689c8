"""A job of the jobs file as an APScheduler 3 job: its trigger, its options, its version, its slots.

Pure mapping, used by ``broker-jobs scheduler --engine apscheduler`` (:mod:`.aps_engine`):

* ``cron``: our parsed fields, written back for APScheduler's ``CronTrigger`` with weekday
  **names** (APScheduler reads weekday ``0`` as Monday, crontab as Sunday); when both day fields
  are restricted, Vixie cron's "either day field" rule is an ``OrTrigger`` of two crons.
* ``interval``: ``IntervalTrigger`` anchored where ours is (``start``, or the Unix epoch), so both
  engines compute the same slots.
* ``date``: ``DateTrigger``.
* misfire -> ``coalesce`` and ``misfire_grace_time``; overlap -> ``max_instances`` (of the publish:
  the fleet-wide overlap policy is applied when the slot fires, as the native engine does).

Jitter is not APScheduler's (its jitter moves the run time, so the fire id): the message is delayed instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger as ApsCron
from apscheduler.triggers.date import DateTrigger as ApsDate
from apscheduler.triggers.interval import IntervalTrigger as ApsInterval

from .config import JobDef
from .cron import WEEKDAY_NAMES, parse_cron
from .policies import LATE_AFTER
from .triggers import CronTrigger, DateTrigger, IntervalTrigger, Trigger, instant, next_fire

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: How far before APScheduler's run time our trigger's slot may lie (a DST shift moves it by an hour at most).
SLOT_WINDOW = timedelta(hours=1, seconds=1)
#: ``max_instances`` of a job whose overlap policy is ``allow`` (APScheduler needs a number).
MANY = 1000


def _values(values: frozenset[int], low: int, high: int) -> str:
    return "*" if set(values) >= set(range(low, high + 1)) else ",".join(str(v) for v in sorted(values))


def aps_trigger(job: JobDef) -> BaseTrigger:
    """The APScheduler trigger firing at ``job``'s slots."""
    trigger = job.trigger
    if isinstance(trigger, CronTrigger):
        spec = parse_cron(trigger.expression)
        fields: dict[str, Any] = {
            "second": _values(spec.seconds, 0, 59), "minute": _values(spec.minutes, 0, 59),
            "hour": _values(spec.hours, 0, 23), "month": _values(spec.months, 1, 12),
            "timezone": trigger.timezone,
        }
        days = _values(spec.days, 1, 31)
        weekdays = "*" if len(spec.weekdays) == 7 else ",".join(WEEKDAY_NAMES[d] for d in sorted(spec.weekdays))
        if spec.day_or:
            return OrTrigger([ApsCron(day=days, **fields), ApsCron(day_of_week=weekdays, **fields)])
        return ApsCron(day=days, day_of_week=weekdays, **fields)
    if isinstance(trigger, IntervalTrigger):
        start = _EPOCH if trigger.start is None else instant(trigger.start, trigger.timezone)
        end = None if trigger.end is None else instant(trigger.end, trigger.timezone)
        return ApsInterval(seconds=trigger.seconds, start_date=start, end_date=end, timezone=UTC)
    if isinstance(trigger, DateTrigger):
        return ApsDate(run_date=instant(trigger.at, trigger.timezone), timezone=UTC)
    raise TypeError(f"not a trigger: {trigger!r}")


def aps_options(job: JobDef) -> dict[str, Any]:
    """``coalesce``, ``misfire_grace_time`` and ``max_instances`` for ``job``'s policies.

    * ``skip``: late runs (more than 2 s, as the native engine counts) are missed.
    * ``run_once``: missed runs coalesce into one, however late.
    * ``run_all``: each missed run within ``misfire_grace`` runs.
    """
    if job.misfire == "skip":
        misfire: dict[str, Any] = {"coalesce": True, "misfire_grace_time": int(LATE_AFTER)}
    elif job.misfire == "run_once":
        misfire = {"coalesce": True, "misfire_grace_time": None}
    else:
        misfire = {"coalesce": False, "misfire_grace_time": max(1, round(job.misfire_grace))}
    return {**misfire, "max_instances": MANY if job.overlap == "allow" else 1}


def version(job: JobDef) -> str:
    """A digest of ``job``'s definition: a stored APScheduler job of another version is replaced."""
    fields = {k: v for k, v in asdict(job).items() if k != "spec"}
    fields["trigger_kind"] = type(job.trigger).__name__
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def slot_of(trigger: Trigger, run_time: datetime) -> datetime:
    """Our trigger's slot for APScheduler's ``run_time``: the run time itself when it is one of our slots,
    else our latest slot in the hour before it (a DST gap or fold, where the engines differ), else the run time.

    So the fire id follows the native engine's DST policy: a time repeated by fall-back maps to the
    first pass's slot (``fold: once``: the second copy is dropped by the workers' dedup).
    """
    run_time = run_time.astimezone(UTC)
    if next_fire(trigger, run_time - timedelta(microseconds=1)) == run_time:
        return run_time
    found, slot, steps = None, next_fire(trigger, run_time - SLOT_WINDOW), 0
    while slot is not None and slot <= run_time and steps < 4000:
        found, slot, steps = slot, next_fire(trigger, slot), steps + 1
    return found or run_time
