"""``broker-jobs scheduler --engine apscheduler``: the jobs file run by APScheduler 3.

The jobs (file and runtime, re-read every 5 s like the native engine's :class:`~.catalog.Catalog`)
become APScheduler jobs in its ``SQLAlchemyJobStore`` on ``DATABASE_URL`` (table
``apscheduler_jobs``), with the triggers and options of :mod:`.aps_triggers`.  A stored job whose
definition did not change is kept across restarts, so APScheduler's misfire handling (coalesce,
grace) applies to the runs missed while no engine ran.

Each run calls :func:`fire`, which publishes the job's slot exactly as the native engine does:
the overlap policy against the fleet's runs in flight (:func:`~.planning.plan_flights`), the
message of :class:`~.publisher.Outgoing` with the fire id ``job_id@slot`` (the slot from
APScheduler's scheduled run time, :func:`~.aps_triggers.slot_of`), the confirmed publish, and the
audit rows and open fires in the scheduler state.  So this engine and ``broker-jobs scheduler``
running side by side publish the same fire ids, and the workers run each slot once.

One instance per database: APScheduler 3 cannot share a job store between processes, so a second
engine finding a live one exits with one line (no HA; ``broker-jobs scheduler`` has it).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from ..clock import utc_now
from ..errors import ConfigError
from ..settings import Settings
from ..store.scheduler_state import SchedulerStore
from .aps_triggers import aps_options, aps_trigger, slot_of, version
from .catalog import Catalog
from .enqueue import publish, scheduled_run_time
from .planning import Planned, jitter_ms, log_outcome, plan_flights
from .policies import CAUGHT_UP, FIRED, LATE_AFTER, MISSED, PAUSED
from .publisher import fire_id

logger = logging.getLogger(__name__)

#: The table of APScheduler's job store (APScheduler creates it).
TABLE = "apscheduler_jobs"
#: Instance ids of this engine start with it (``scheduler status`` tells the engines apart).
PREFIX = "apscheduler:"
REFRESH = 5.0

_active: ApsEngine | None = None


def fire(job_id: str, version: str = "") -> None:
    """What every stored APScheduler job calls: publish ``job_id``'s slot through the running engine.

    Parameters:
      job_id: The job of the jobs file (or a runtime job).
      version: The definition's digest the job was stored with (compared when the engine starts).
    """
    engine = _active
    if engine is None:
        raise RuntimeError(f"job {job_id}: no APScheduler engine runs in this process")
    engine.fire(job_id, scheduled_run_time() or utc_now())


class ApsEngine:
    """The jobs file on an APScheduler ``BackgroundScheduler``, publishing through our publish path.

    Parameters:
      settings: The settings.
      store: The shared scheduler state (its engine holds APScheduler's job store too).
      declare_queues: Declares the jobs' queues (through the broker).
      clock: The current time, aware UTC.
    """

    def __init__(self, settings: Settings, store: SchedulerStore, *,
                 declare_queues: Callable[[set[str]], None] | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.declare_queues = declare_queues
        self.instance_id = f"{PREFIX}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started_at = clock()
        self.errors, self.last_error = 0, cast(str | None, None)
        self.catalog = Catalog(settings, store, Path(settings.jobs_config), declare_queues=declare_queues,
                               report=self._error)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename=TABLE)},
            executors={"default": ThreadPoolExecutor(4)}, timezone="UTC")
        self._fired: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- jobs --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the jobs (ConfigError if invalid), check no other instance runs, start APScheduler."""
        global _active
        self.catalog.load()
        self._check_alone()
        _active = self
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        self.scheduler.start(paused=True)  # the job store is open: stored jobs can be compared
        self.reconcile()
        self.scheduler.resume()

    def _check_alone(self) -> None:
        now = utc_now()
        for row in self.store.instances():
            alive = (now - row["heartbeat_at"]) <= timedelta(seconds=3 * REFRESH)
            if alive and str(row["instance_id"]).startswith(PREFIX):
                raise ConfigError(f"another APScheduler engine ({row['instance_id']}) uses this DATABASE_URL: "
                                  "APScheduler 3 cannot share a job store; stop it first")

    def reconcile(self) -> None:
        """Make APScheduler's jobs the catalog's: new and changed ones (re)added, gone ones removed;
        a stored job of the same version is kept with its next run time (its misfires are handled)."""
        wanted = self.catalog.jobs
        for stored in self.scheduler.get_jobs():
            if stored.id not in wanted:
                stored.remove()
                logger.info("[apscheduler] job %s removed", stored.id)
        for job_id, job in wanted.items():
            digest = version(job)
            stored = self.scheduler.get_job(job_id)
            if stored is not None and stored.kwargs.get("version") == digest:
                continue
            self.scheduler.add_job(fire, trigger=aps_trigger(job), args=[job_id], kwargs={"version": digest},
                                   id=job_id, name=job.description or job_id, replace_existing=True,
                                   **aps_options(job))
            logger.info("[apscheduler] job %s scheduled: %s", job_id, aps_trigger(job))
        self.catalog.declare()

    def refresh(self) -> None:
        """Re-read pauses, runtime jobs and a changed jobs file; write a heartbeat."""
        changes = self.catalog.refresh()
        if changes.changed or changes.removed:
            self.reconcile()
        self.store.heartbeat(self.instance_id, started_at=self.started_at, leader=True, token=None,
                             errors=self.errors, last_error=self.last_error)

    # -- a run -------------------------------------------------------------------------------------
    def fire(self, job_id: str, run_time: datetime) -> list[Planned]:
        """Publish ``job_id``'s slot for APScheduler's ``run_time`` (overlap policy, pause, audit)."""
        job = self.catalog.jobs.get(job_id)
        if job is None:
            logger.warning("[apscheduler] job %s is not in the jobs any more; run at %s ignored", job_id, run_time)
            return []
        slot = slot_of(job.trigger, run_time)
        fid = fire_id(job.id, slot)
        with self._lock:
            if self._fired.get(job_id) == fid:  # a wall time repeated by fall-back (fold: once)
                logger.info("[apscheduler] job %s slot %s already fired", job_id, fid)
                return []
            self._fired[job_id] = fid
        now = self.clock()
        plan = Planned(job, slot, FIRED if (now - slot).total_seconds() <= LATE_AFTER else CAUGHT_UP)
        plans = [plan]
        if job_id in self.catalog.paused:
            plan.outcome, plan.detail = PAUSED, self.catalog.paused[job_id]
        else:
            flights = [] if job.overlap == "allow" else self.store.in_flight([job_id]).get(job_id, [])
            plan_flights(plan, plans, flights, jitter_ms(job))
        batch = [p.out for p in plans if p.out is not None]
        publish(self.settings, batch, self.declare_queues)
        self._record(plans, now)
        return plans

    def _missed(self, event: JobExecutionEvent) -> None:
        job = self.catalog.jobs.get(event.job_id)
        if job is not None:
            self._record([Planned(job, slot_of(job.trigger, event.scheduled_run_time), MISSED,
                                  "past APScheduler's misfire grace")], self.clock())

    def _record(self, plans: list[Planned], now: datetime) -> None:
        batch = [p.out for p in plans if p.out is not None]
        self.store.commit(
            token=None, states=[],
            audit=[{"job_id": p.job.id, "slot": p.slot, "outcome": p.outcome,
                    "fire_id": p.out.fire_id if p.out else p.superseded,
                    "message_id": p.out.message_id if p.out else None,
                    "lag_ms": (now - p.slot).total_seconds() * 1000 if p.out and p.slot else None,
                    "detail": p.detail, "token": None, "recorded_at": now} for p in plans],
            fires=[{"fire_id": o.fire_id, "job_id": o.job_id, "message_id": o.message_id, "published_at": now}
                   for o in batch])
        closed = [p.superseded for p in plans if p.superseded]
        if closed:
            self.store.close_fires(closed)
        for plan in plans:
            log_outcome(plan, (now - plan.slot).total_seconds() if plan.slot else 0.0)

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Refresh every 5 s until ``stop`` is set, then shut APScheduler down (running publishes finish)."""
        global _active
        try:
            while not stop.is_set():
                try:
                    self.refresh()
                except Exception as exc:  # noqa: BLE001 - the database down: the runs go on, said once per refresh
                    self._error(repr(exc))
                stop.wait(REFRESH)
        finally:
            self.scheduler.shutdown(wait=True)
            _active = None
            logger.info("[apscheduler] instance %s stopped", self.instance_id)

    def health(self) -> dict[str, Any]:
        """Live and ready for the probes: APScheduler's thread runs."""
        running = bool(self.scheduler.running)
        return {"live": running, "ready": running, "problems": [] if running else ["APScheduler is not running"],
                "instance": self.instance_id, "leader": True, "token": None, "jobs": len(self.catalog.jobs),
                "errors": self.errors}

    def _error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
        logger.error("[apscheduler] %s", text)
