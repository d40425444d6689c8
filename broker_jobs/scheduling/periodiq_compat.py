"""``periodiq broker_jobs.actors``: the jobs file's cron jobs, exposed to periodiq.

periodiq finds actors declared with ``periodic=cron(...)`` and calls their
``send_with_options(scheduled_at=...)`` at each matching minute, without
arguments or priority.  For each enabled job of the jobs file (for the current
``APP_ENV``) this declares a thin trigger actor ``periodic__<job id>`` whose
``send_with_options`` sends the real job instead, with its arguments, its
priority and the fire id ``job_id@minute`` (so two periodiq processes, or
periodiq and ``broker-jobs scheduler``, do not run one slot twice: the workers
drop the second message).  The trigger message itself never reaches a worker.

Limits (periodiq's): one-minute granularity (a seconds field must be 0), the
process's local time zone only, no catch-up after downtime, no misfire,
overlap, jitter or pause, Unix only.  Intervals are converted to crons when the
conversion is exact (every 5 minutes -> ``*/5 * * * *``), other jobs are
skipped with a warning.  ``broker-jobs scheduler`` is the production choice.

It is active only when the process is periodiq (``sys.argv[0]``) or
``BROKER_JOBS_PERIODIQ=1``; then the broker gets periodiq's middleware, which
must be there before the actors are declared.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq

from .. import registry
from ..settings import Settings
from .config import JobDef, load_config
from .publisher import iso
from .triggers import CronTrigger, IntervalTrigger, parse_cron

logger = logging.getLogger(__name__)

PREFIX = "periodic__"


def periodiq_active() -> bool:
    """Whether this process runs under periodiq."""
    return os.environ.get("BROKER_JOBS_PERIODIQ") == "1" or Path(sys.argv[0] if sys.argv else "").name == "periodiq"


def add_periodiq_middleware(broker: dramatiq.Broker) -> None:
    """Add periodiq's middleware to ``broker`` (the ``periodiq`` entry calls it before declaring the triggers)."""
    from periodiq import PeriodiqMiddleware  # deferred: periodiq is only needed under the periodiq command

    broker.add_middleware(PeriodiqMiddleware(skip_delay=30))


def _values(values: frozenset[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


def periodiq_cron(job: JobDef) -> tuple[str | None, str]:
    """The 5-field cron periodiq can run for ``job``, or None and why not.

    A Sunday (0) is also written as 7: periodiq never fires a Sunday-only ``0``.
    """
    trigger = job.trigger
    if isinstance(trigger, IntervalTrigger):
        seconds = trigger.seconds
        if trigger.start is not None or seconds % 60:
            return None, f"every {seconds:g} s is not a whole-minute cron"
        minutes = int(seconds // 60)
        if minutes < 60 and 60 % minutes == 0:
            return f"*/{minutes} * * * *", ""
        if minutes % 60 == 0 and minutes <= 1440 and 1440 % minutes == 0:
            return f"0 */{minutes // 60} * * *", ""
        return None, f"every {minutes} minutes is not expressible as a cron"
    if not isinstance(trigger, CronTrigger):
        return None, "one-off date jobs are not supported by periodiq"
    spec = parse_cron(trigger.expression)
    if spec.seconds != frozenset({0}):
        return None, "periodiq has one-minute granularity (the seconds field must be 0)"
    weekdays = spec.weekdays | {7} if 0 in spec.weekdays else spec.weekdays
    parts = [(spec.minutes, range(60)), (spec.hours, range(24)), (spec.days, range(1, 32)),
             (spec.months, range(1, 13)), (weekdays, range(7))]
    if spec.day_or is False and spec.days != frozenset(range(1, 32)) and spec.weekdays != frozenset(range(7)):
        return None, "a day of month AND a weekday together is not expressible for periodiq"
    expr = " ".join("*" if set(values) >= set(full) else _values(values) for values, full in parts)
    return expr, ""


def _local_zone_matches(timezone: str) -> bool:
    if os.environ.get("TZ") == timezone:
        return True
    offset = datetime.now().astimezone().utcoffset()
    return timezone in ("UTC", "Etc/UTC") and offset is not None and not offset.total_seconds()


def register(broker: dramatiq.Broker, settings: Settings) -> list[str]:
    """Declare one trigger actor per convertible job of the jobs file; returns their names."""
    from periodiq import cron  # deferred: periodiq is only needed under the periodiq command

    class TriggerActor(dramatiq.Actor):  # type: ignore[type-arg]  # triggers of any job's signature
        """Sends the real job when periodiq sends the trigger."""

        def send_with_options(self, *, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                              delay: Any = None, **options: Any) -> Any:
            job = jobs[self.actor_name]
            at = options.get("scheduled_at")
            slot = datetime.fromisoformat(str(at)) if at else datetime.now(UTC)
            # periodiq stamps the time it woke up: the slot is its minute.
            stamp = iso(slot.astimezone(UTC).replace(second=0, microsecond=0))
            logger.info("[periodiq] job %s fired slot %s (priority %s)", job.id, stamp, job.priority.label)
            return registry.get(job.actor).actor.send_with_options(
                args=job.args, kwargs=job.kwargs, priority=job.priority.label,
                fire_id=f"{job.id}@{stamp}", job_id=job.id, slot=stamp)

    def noop() -> None:
        """A trigger: periodiq's message is replaced by the real job's."""

    config = load_config(Path(settings.jobs_config), settings)
    jobs: dict[str, JobDef] = {}
    names = []
    for job in config.jobs:
        if not job.enabled:
            continue
        expr, why = periodiq_cron(job)
        if expr is not None and not _local_zone_matches(job.timezone):
            expr, why = None, f"periodiq reads local time; run it with TZ={job.timezone}"
        if expr is None:
            logger.warning("[periodiq] job %s skipped: %s (use broker-jobs scheduler)", job.id, why)
            continue
        name = PREFIX + job.id.replace("-", "_").replace(".", "_").replace(":", "_")
        jobs[name] = job
        # periodic= is periodiq's option, outside Dramatiq's overloads.
        dramatiq.actor(noop, actor_class=TriggerActor, actor_name=name,  # type: ignore[call-overload]
                       queue_name=job.queue, broker=broker, periodic=cron(expr))
        names.append(name)
    return names
