"""The scheduler loop: one leader among any number of instances fires each slot once.

Each instance loads the jobs file (and the runtime jobs), then loops; each step
is the job of one part, and this module only composes them:

1. every ``RENEW`` seconds, take or renew the lease (:mod:`.lease_keeper` over
   :mod:`.lease`); a new leadership raises the database fence to its token and
   reloads every job's last slot (:mod:`.recorder`);
2. every ``REFRESH`` seconds, re-read pauses, runtime jobs and (when changed)
   the jobs file (:mod:`.catalog`), and write a heartbeat;
3. as leader, pop every job due from the heap of next fire times (:mod:`.due`),
   decide each slot (misfire, pause, overlap: :func:`.planning.plan_job`),
   publish the messages of the tick in one confirmed batch, then record the last
   slot, the audit rows and the open fires in one fenced transaction
   (:mod:`.recorder`);
4. sleep until the earliest of: the next slot, the next renewal, the next refresh.

A crash between publishing and recording republishes the same fire ids; the
workers' dedup drops the second copy.  A batch RabbitMQ did not confirm is kept
and published again (new message ids, same fire ids) until it is.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from .. import alerts, metrics
from ..errors import BrokerJobsError, ConfigError
from ..settings import Settings
from ..store.scheduler_state import SchedulerStore
from .catalog import Catalog, Changes
from .config import JobDef
from .due import DueHeap
from .lease import Lease
from .lease_keeper import LEASE_TTL, REFRESH, RENEW, LeaseKeeper
from .planning import LATER, Planned, plan_job
from .policies import MISSED
from .publisher import Outgoing
from .recorder import Recorder

logger = logging.getLogger(__name__)

#: A loop that has not turned for this long is stuck: the instance is not live.
LOOP_STUCK = 30.0


class _MetricsFeed:
    """Feeds ``broker_jobs.metrics`` from a thread of its own.

    A label's first sample costs about 2 ms in Prometheus' multiprocess mode:
    10,000 jobs must not hold the loop for 20 s.
    """

    def __init__(self) -> None:
        self.metrics = metrics
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def __call__(self, name: str, *args: Any) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="scheduler-metrics", daemon=True)
            self._thread.start()
        self._queue.put((name, args))

    def _run(self) -> None:
        while True:
            name, args = self._queue.get()
            try:
                getattr(self.metrics, name)(*args)
            except Exception:  # metrics never break the scheduler
                logger.debug("[scheduler] metrics %s failed", name, exc_info=True)


metric = _MetricsFeed()


class BatchPublisher(Protocol):
    """Publishes a tick's messages as one confirmed batch (:mod:`.publisher`)."""

    def publish(self, batch: list[Outgoing], now_ms: int) -> None:
        """Publish ``batch``; raises :class:`~broker_jobs.errors.BrokerJobsError` unless RabbitMQ confirmed it."""
        ...

    def keepalive(self) -> None:
        """Keep the connection open (and open it ahead of the first slot)."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class Scheduler:
    """One scheduler instance: the loop composing its parts.

    The parts: the :class:`~.catalog.Catalog` (which jobs), the
    :class:`~.lease_keeper.LeaseKeeper` (whether this instance leads), the
    :class:`~.due.DueHeap` (which job is due next), the decisions
    (:func:`~.planning.plan_job`) and the :class:`~.recorder.Recorder` (what was done).

    Parameters:
      settings: The settings (``APP_ENV``, ``JOBS_CONFIG``, ``SCHEDULER_TIMEZONE``).
      store: The shared state.
      lease: The lease (Redis or the database).
      publisher: Publishes confirmed batches.
      config_path: The jobs file (default ``JOBS_CONFIG``).
      declare_queues: Declares the queues the jobs use (through the broker).
      clock: The current time, aware UTC.
      group: Run only this group's jobs (``scheduler --group``; its own lease and store fence); None: every job.
    """

    def __init__(self, settings: Settings, *, store: SchedulerStore, lease: Lease, publisher: BatchPublisher,
                 config_path: Path | None = None, declare_queues: Callable[[set[str]], None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), group: str | None = None) -> None:
        self.settings, self.store, self.publisher, self.clock = settings, store, publisher, clock
        self.group = group
        # A group's instances say so in their id: the heartbeats tell the admin API who runs which group.
        here = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.instance_id = f"{group}@{here}" if group else here
        self.started_at = clock()
        self.errors, self.last_error = 0, cast(str | None, None)
        self.catalog = Catalog(settings, store, Path(config_path or settings.jobs_config),
                               declare_queues=declare_queues, report=self._error, group=group)
        self.keeper = LeaseKeeper(lease, store, self.instance_id, on_lead=self._lead, on_lose=self._lose,
                                  report=self._error)
        self.due = DueHeap()
        self.recorder = Recorder(store, self.keeper, report=self._error, observe=self._observe_slot)
        self._pending: list[Planned] | None = None  # a batch RabbitMQ did not confirm yet
        self._next_renew = self._next_refresh = 0.0
        # Monotonic times of the last loop turn and store read (the probes).
        self.loop_at = time.monotonic()
        self.store_seen_at: float | None = None

    @property
    def token(self) -> int | None:
        """The fencing token while this instance leads, else None."""
        return self.keeper.token

    @property
    def lease(self) -> Lease:
        """The lease the keeper takes and renews."""
        return self.keeper.lease

    @lease.setter
    def lease(self, lease: Lease) -> None:
        self.keeper.lease = lease

    @property
    def jobs(self) -> dict[str, JobDef]:
        """The enabled jobs."""
        return self.catalog.jobs

    @property
    def config_path(self) -> Path:
        """The jobs file."""
        return self.catalog.config_path

    # -- jobs --------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the jobs file (ConfigError if invalid), runtime jobs and pauses."""
        self._apply(self.catalog.load())

    def _apply(self, changes: Changes) -> None:
        for job_id in [*changes.changed, *changes.removed]:
            self.due.changed(job_id)
        self.catalog.declare()
        if self.keeper.token is None:
            return
        fresh = self.recorder.start(changes.changed, self.clock(), restart=changes.retimed)
        for job_id in changes.changed:
            self._push(job_id)
        if fresh:
            self.recorder.save(states=fresh)

    def _push(self, job_id: str) -> None:
        job = self.catalog.jobs.get(job_id)
        if job is None:
            return
        nxt = self.due.push(job_id, job.trigger, self.recorder.last_slot.get(job_id) or self.clock())
        metric("set_next_fire", job_id, None if job_id in self.catalog.paused else nxt)

    def next_run(self) -> datetime | None:
        """The earliest slot in the heap (leader only)."""
        return self.due.earliest()

    # -- leadership --------------------------------------------------------------------------------
    def step_lease(self) -> bool:
        """Take or renew the lease; True while this instance leads."""
        return self.keeper.step()

    def step_down(self, reason: str) -> None:
        """Stop acting as leader (the lease is lost or a newer leader wrote)."""
        self.keeper.step_down(reason)

    def release(self) -> None:
        """Give the lease up at once (shutdown)."""
        self.keeper.release()

    def _lead(self, token: int) -> None:
        self._pending = None
        self.recorder.load()
        jobs = self.catalog.jobs
        fresh = self.recorder.start(jobs, self.clock())
        self.due.clear()
        for job_id in jobs:
            self._push(job_id)
        if fresh:
            self.recorder.save(states=fresh)
        logger.info("[scheduler] instance %s leads (fencing token %d, %d jobs)", self.instance_id, token,
                    len(jobs))
        metric("set_leader", True)

    def _lose(self, reason: str) -> None:
        self.due.clear()
        self._pending = None
        metric("set_leader", False)

    # -- the tick ----------------------------------------------------------------------------------
    def tick(self, now: datetime) -> list[Planned]:
        """Handle every slot due at ``now`` (leader only); returns the decisions."""
        token = self.keeper.token
        if token is None:
            return []
        if self._pending is not None:
            if not self._publish(self._pending):
                return []
            pending, self._pending = self._pending, None
            self._record(pending)
        jobs, paused = self.catalog.jobs, self.catalog.paused
        due = [entry for entry in self.due.pop_due(now) if entry.job_id in jobs]
        if not due:
            return []
        guarded = [e.job_id for e in due if jobs[e.job_id].overlap != "allow" and e.job_id not in paused]
        flights = self.store.in_flight(guarded, now=now) if guarded else {}
        last_slot = self.recorder.last_slot
        plans: list[Planned] = []
        for entry in due:
            job = jobs[entry.job_id]
            last = last_slot.get(job.id, now)
            decided, following = plan_job(job, last, now, list(flights.get(job.id, [])), entry.at,
                                          job.id in paused, paused.get(job.id))
            if following is LATER:
                self.due.unknown(job.id)  # pushed from last_slot, after the publish
            else:
                self.due.follows(job.id, following)
            last_slot[job.id] = max([last, *(p.slot for p in decided if p.slot is not None)])
            plans += decided
        if not self._publish(plans):
            # Unconfirmed: published again next loop, unless leadership changed (then redecided).
            self._pending = plans if self.keeper.token == token else None
            return plans
        self._record(plans)
        return plans

    def _publish(self, plans: list[Planned]) -> bool:
        batch = [p.out for p in plans if p.out is not None]
        if not batch:
            return True
        token = self.keeper.token
        if self.keeper.expired() and (not self.keeper.step() or self.keeper.token != token):
            return False
        self.catalog.declare()
        try:
            self.publisher.publish(batch, int(time.time() * 1000))
        except BrokerJobsError as exc:
            self._error(f"{exc}; publishing again")
            for item in batch:
                item.renew()
            return False
        return True

    @staticmethod
    def _observe_slot(job_id: str, slot: datetime, lag: float, outcome: str) -> None:
        """A recorded slot: its metrics, and the missed-slot alert (metrics record, they do not alert)."""
        metric("observe_fire", job_id, slot, lag, outcome)
        if outcome == MISSED:
            alerts.missed_slot(job_id, slot)

    def _record(self, plans: list[Planned]) -> None:
        for job_id in self.recorder.record(plans, self.clock()):
            self._push(job_id)

    # -- the loop ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read pauses, runtime jobs and a changed jobs file; write a heartbeat."""
        self._apply(self.catalog.refresh())
        if self.recorder.unsaved:
            self.recorder.save()
        self.store.heartbeat(self.instance_id, started_at=self.started_at, leader=self.keeper.token is not None,
                             token=self.keeper.token, errors=self.errors, last_error=self.last_error)
        self.store_seen_at = time.monotonic()

    def health(self) -> dict[str, Any]:
        """Live and ready, and why not, for the probes (read from another thread).

        Live: the loop turned in the last :data:`LOOP_STUCK` s.  Ready: live, and a
        fresh view: the lease answered within ``LEASE_TTL`` (so this instance knows
        whether it leads or stands by), the shared state was read within three
        refreshes, and, when leading, RabbitMQ holds its publishing channel.
        """
        now = time.monotonic()
        problems: list[str] = []
        stuck = now - self.loop_at
        if stuck > LOOP_STUCK:
            problems.append(f"lease loop has not turned for {stuck:.0f} s")
        seen_at = self.keeper.seen_at
        lease_age = None if seen_at is None else now - seen_at
        if lease_age is None or lease_age > LEASE_TTL:
            problems.append("lease store (Redis or the database) not answering"
                            + ("" if lease_age is None else f" for {lease_age:.0f} s"))
        store_age = None if self.store_seen_at is None else now - self.store_seen_at
        if store_age is None or store_age > 3 * REFRESH:
            problems.append("scheduler state in the database not read"
                            + ("" if store_age is None else f" for {store_age:.0f} s"))
        token = self.keeper.token
        leader = token is not None
        if leader and not getattr(self.publisher, "connected", True):
            problems.append("leads without a connection to RabbitMQ")
        return {"live": stuck <= LOOP_STUCK, "ready": not problems, "problems": problems,
                "instance": self.instance_id, "leader": leader, "token": token,
                "jobs": len(self.catalog.jobs), "errors": self.errors}

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, then release the lease."""
        try:
            while not stop.is_set():
                mono = self.loop_at = time.monotonic()
                if mono >= self._next_renew:
                    self.keeper.step()
                    self._next_renew = mono + RENEW
                if mono >= self._next_refresh:
                    self._guarded(self.refresh)
                    self._next_refresh = mono + REFRESH
                if self.keeper.token is not None:
                    self._guarded(lambda: self.tick(self.clock()))
                    self.publisher.keepalive()  # and connects ahead of the first slot
                wait = min(self._next_renew, self._next_refresh) - time.monotonic()
                nxt = self.due.earliest() if self.keeper.token is not None else None
                if nxt is not None:
                    wait = min(wait, (nxt - self.clock()).total_seconds())
                if self._pending is not None:
                    wait = min(wait, 1.0)
                stop.wait(max(0.0, wait))
        finally:
            self.keeper.release()
            self.publisher.close()

    def _guarded(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except ConfigError:
            raise
        except Exception as exc:
            logger.exception("[scheduler] error: %r", exc)
            self._error(repr(exc))
            time.sleep(0.5)

    def _error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
        logger.error("[scheduler] %s", text)
