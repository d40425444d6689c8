"""The scheduler loop: one leader among any number of instances fires each slot once.

Each instance loads the jobs file (and the runtime jobs), then loops:

1. every ``RENEW`` seconds, take or renew the lease (:mod:`.lease`); a new
   leadership raises the database fence to its token and reloads every job's
   last slot;
2. every ``REFRESH`` seconds, re-read pauses, runtime jobs and (when changed)
   the jobs file, and write a heartbeat;
3. as leader, pop every job due from a heap of next fire times, decide each
   slot (misfire, pause, overlap), publish the messages of the tick in one
   confirmed batch, then record the last slot, the audit rows and the open
   fires in one fenced transaction;
4. sleep until the earliest of: the next slot, the next renewal, the next refresh.

A crash between publishing and recording republishes the same fire ids; the
workers' dedup drops the second copy.  A batch RabbitMQ did not confirm is kept
and published again (new message ids, same fire ids) until it is.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from ..clock import as_utc
from ..errors import BrokerJobsError, ConfigError
from ..store.scheduler_state import FencedOut, Flight, SchedulerStore
from .config import JobDef, load_config, parse_job
from .lease import Lease
from .planning import LATER, Planned, collect_due, log_outcome, plan_flights
from .policies import PAUSED, PUBLISHING, plan_misfire
from .triggers import next_fire

logger = logging.getLogger(__name__)

RENEW, LEASE_TTL, REFRESH = 2.0, 7.0, 5.0
#: A loop that has not turned for this long is stuck: the instance is not live.
LOOP_STUCK = 30.0


class _MetricsFeed:
    """Feeds ``broker_jobs.metrics`` from a thread of its own, if that module exists.

    A label's first sample costs about 2 ms in Prometheus' multiprocess mode:
    10,000 jobs must not hold the loop for 20 s.
    """

    def __init__(self) -> None:
        try:
            from .. import metrics
        except ImportError:
            metrics = None  # type: ignore[assignment]
        self.metrics: Any = metrics
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def __call__(self, name: str, *args: Any) -> None:
        if self.metrics is None:
            return
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


@dataclass
class _Unsaved:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    fires: list[dict[str, Any]] = field(default_factory=list)


class Scheduler:
    """One scheduler instance.

    Parameters:
      settings: The settings (``APP_ENV``, ``JOBS_CONFIG``, ``SCHEDULER_TIMEZONE``).
      store: The shared state.
      lease: The lease (Redis or the database).
      publisher: Publishes confirmed batches.
      config_path: The jobs file (default ``JOBS_CONFIG``).
      declare_queues: Declares the queues the jobs use (through the broker).
      clock: The current time, aware UTC.
    """

    def __init__(self, settings: Any, *, store: SchedulerStore, lease: Lease, publisher: Any,
                 config_path: Path | None = None, declare_queues: Callable[[set[str]], None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.store, self.lease, self.publisher = store, lease, publisher
        self.config_path = Path(config_path or settings.jobs_config)
        self.declare_queues = declare_queues
        self.clock = clock
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started_at = clock()
        self.config_jobs: dict[str, JobDef] = {}
        self.jobs: dict[str, JobDef] = {}
        self.last_slot: dict[str, datetime] = {}
        self.last_outcome: dict[str, str | None] = {}
        self.last_fired: dict[str, tuple[str | None, str | None, datetime | None]] = {}
        self.paused: dict[str, str | None] = {}
        self.token: int | None = None
        self.lease_until = 0.0
        self.errors, self.last_error = 0, cast(str | None, None)
        self._heap: list[tuple[datetime, int, str, int]] = []
        self._following: dict[str, datetime | None] = {}  # next slot, computed while planning
        self._versions: dict[str, int] = {}
        self._seq = 0
        self._pending: list[Planned] | None = None
        self._unsaved = _Unsaved()
        self._config_mtime: float | None = None
        self._specs_seen: dict[str, dict[str, Any]] | None = None
        self._declared: set[str] = set()
        self._next_renew = self._next_refresh = 0.0
        # Monotonic times of the last loop turn, lease answer and store read (the probes).
        self.loop_at = time.monotonic()
        self.lease_seen_at: float | None = None
        self.store_seen_at: float | None = None

    # -- jobs --------------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the jobs file (ConfigError if invalid), runtime jobs and pauses."""
        self._config_mtime = self._mtime()
        config = load_config(self.config_path, self.settings)
        self.config_jobs = {job.id: job for job in config.jobs}
        self._reload_shared()

    def _mtime(self) -> float | None:
        try:
            return self.config_path.stat().st_mtime
        except OSError:
            return None

    def _reload_shared(self, config_changed: bool = True) -> None:
        self.paused = {c.job_id: c.note for c in self.store.controls().values() if c.paused}
        specs = self.store.runtime_specs()
        if not config_changed and specs == self._specs_seen:
            return  # comparing 10,000 jobs every 5 s would be most of the idle CPU
        self._specs_seen = specs
        jobs = dict(self.config_jobs)
        for job_id, spec in specs.items():
            if job_id in jobs:
                continue
            try:
                jobs[job_id] = parse_job(spec, self.settings, path=(f"runtime job {job_id}",), origin="runtime")
            except BrokerJobsError as exc:
                self._error(f"runtime job {job_id} ignored: {exc}")
        self._set_jobs({j.id: j for j in jobs.values() if j.enabled})

    def _set_jobs(self, jobs: dict[str, JobDef]) -> None:
        changed = [i for i in jobs if self.jobs.get(i) != jobs[i]]
        removed = [i for i in self.jobs if i not in jobs]
        retimed = {i for i in changed if i in self.jobs and self.jobs[i].trigger != jobs[i].trigger}
        self.jobs = jobs
        for job_id in [*changed, *removed]:
            self._versions[job_id] = self._versions.get(job_id, 0) + 1
            self._following.pop(job_id, None)
        self._declare()
        if self.token is None:
            return
        now = self.clock()
        fresh = {}
        for job_id in changed:
            if job_id not in self.last_slot or job_id in retimed:
                self.last_slot[job_id] = now  # a new or rescheduled job starts now, without catch-up
                fresh[job_id] = self._state_row(job_id)
            self._push(job_id)
        if fresh:
            self._save(states=fresh)

    def _state_row(self, job_id: str) -> dict[str, Any]:
        fired = self.last_fired.get(job_id, (None, None, None))
        return {"job_id": job_id, "last_slot": self.last_slot[job_id], "last_outcome": self.last_outcome.get(job_id),
                "last_fire_id": fired[0], "last_message_id": fired[1], "last_fired_at": fired[2],
                "token": self.token}

    def _declare(self) -> None:
        queues = {job.queue for job in self.jobs.values()} - self._declared
        if queues and self.declare_queues is not None:
            try:
                self.declare_queues(queues)
                self._declared |= queues
            except BrokerJobsError:
                raise
            except Exception as exc:  # noqa: BLE001 - RabbitMQ down: declared again before the next publish
                self._error(f"cannot declare queues {sorted(queues)} yet: {exc!r}")

    def _push(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        nxt: datetime | None
        if job_id in self._following:
            nxt = self._following.pop(job_id)
        else:
            nxt = next_fire(job.trigger, self.last_slot.get(job_id) or self.clock())
        if nxt is not None:
            self._seq += 1
            heapq.heappush(self._heap, (nxt, self._seq, job_id, self._versions.get(job_id, 0)))
        metric("set_next_fire", job_id, None if job_id in self.paused else nxt)

    def next_run(self) -> datetime | None:
        """The earliest slot in the heap (leader only)."""
        while self._heap and self._heap[0][3] != self._versions.get(self._heap[0][2], 0):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    # -- leadership --------------------------------------------------------------------------------
    def step_lease(self) -> bool:
        """Take or renew the lease; True while this instance leads."""
        started = time.monotonic()
        try:
            fence = 0 if self.token is not None else self.store.fence()
            token = self.lease.acquire(self.instance_id, LEASE_TTL, min_token=fence)
        except Exception as exc:  # noqa: BLE001 - Redis or the database down: keep trying
            self._error(f"lease unavailable: {exc!r}")
            if self.token is not None and time.monotonic() > self.lease_until:
                self.step_down("lease expired while its store was unreachable")
            return self.token is not None
        self.lease_seen_at = time.monotonic()
        if token is None:
            if self.token is not None:
                self.step_down("lease taken by another instance")
            return False
        if token != self.token:
            self._become_leader(token)
        self.lease_until = started + LEASE_TTL - 1.0
        return True

    def _become_leader(self, token: int) -> None:
        self.store.raise_fence(token)
        self.token = token
        self._pending, self._unsaved = None, _Unsaved()
        now = self.clock()
        states = self.store.states()
        self.last_slot = {i: as_utc(r.last_slot) for i, r in states.items() if r.last_slot is not None}  # type: ignore[misc]
        self.last_outcome = {i: r.last_outcome for i, r in states.items()}
        self.last_fired = {i: (r.last_fire_id, r.last_message_id, as_utc(r.last_fired_at)) for i, r in states.items()}
        fresh = {}
        for job_id in self.jobs:
            if job_id not in self.last_slot:
                self.last_slot[job_id] = now
                fresh[job_id] = self._state_row(job_id)
        self._heap, self._following = [], {}
        for job_id in self.jobs:
            self._push(job_id)
        if fresh:
            self._save(states=fresh)
        logger.info("[scheduler] instance %s leads (fencing token %d, %d jobs)", self.instance_id, token,
                    len(self.jobs))
        metric("set_leader", True)

    def step_down(self, reason: str) -> None:
        """Stop acting as leader (the lease is lost or a newer leader wrote)."""
        if self.token is None:
            return
        logger.warning("[scheduler] instance %s stops leading: %s", self.instance_id, reason)
        self.token, self._heap, self._pending = None, [], None
        metric("set_leader", False)

    def release(self) -> None:
        """Give the lease up at once (shutdown)."""
        held = self.token is not None
        self.token = None
        try:
            self.lease.release(self.instance_id)
        except Exception as exc:  # noqa: BLE001 - the lease then simply expires
            logger.warning("[scheduler] could not release the lease: %r", exc)
        if held:
            logger.info("[scheduler] instance %s released the lease", self.instance_id)

    # -- the tick ----------------------------------------------------------------------------------
    def tick(self, now: datetime) -> list[Planned]:
        """Handle every slot due at ``now`` (leader only); returns the decisions."""
        token = self.token
        if token is None:
            return []
        if self._pending is not None:
            if not self._publish(self._pending):
                return []
            pending, self._pending = self._pending, None
            self._record(pending)
        due_ids, firsts = [], {}
        while self._heap and self._heap[0][0] <= now:
            when, _, job_id, version = heapq.heappop(self._heap)
            if version == self._versions.get(job_id, 0) and job_id in self.jobs:
                due_ids.append(job_id)
                firsts[job_id] = when
        if not due_ids:
            return []
        guarded = [i for i in due_ids if self.jobs[i].overlap != "allow" and i not in self.paused]
        flights = self.store.in_flight(guarded, now=now) if guarded else {}
        plans: list[Planned] = []
        for job_id in due_ids:
            plans += self._plan_job(self.jobs[job_id], now, list(flights.get(job_id, [])), firsts[job_id])
        if not self._publish(plans):
            # Unconfirmed: published again next loop, unless leadership changed (then redecided).
            self._pending = plans if self.token == token else None
            return plans
        self._record(plans)
        return plans

    def _plan_job(self, job: JobDef, now: datetime, flights: list[Flight], first: datetime) -> list[Planned]:
        last = self.last_slot.get(job.id, now)
        due, following = collect_due(job.trigger, last, now, max(job.misfire_grace, 5.0), first)
        if following is LATER:
            self._following.pop(job.id, None)  # _push computes it from last_slot, after the publish
        else:
            self._following[job.id] = following
        plans: list[Planned] = []
        for slot, outcome, detail in plan_misfire(due, now, job.misfire, job.misfire_grace):
            plan = Planned(job, slot, outcome, detail)
            plans.append(plan)
            if outcome not in PUBLISHING:
                continue
            if job.id in self.paused:
                plan.outcome, plan.detail = PAUSED, self.paused[job.id]
                continue
            plan_flights(plan, plans, flights, self._rng_delay(job))
        self.last_slot[job.id] = max([last, *(p.slot for p in plans if p.slot is not None)])
        return plans

    @staticmethod
    def _rng_delay(job: JobDef) -> int:
        return int(random.uniform(0, job.jitter) * 1000) if job.jitter else 0

    def _publish(self, plans: list[Planned]) -> bool:
        batch = [p.out for p in plans if p.out is not None]
        if not batch:
            return True
        token = self.token
        if time.monotonic() > self.lease_until and (not self.step_lease() or self.token != token):
            return False
        self._declare()
        try:
            self.publisher.publish(batch, int(time.time() * 1000))
        except BrokerJobsError as exc:
            self._error(f"{exc}; publishing again")
            for item in batch:
                item.renew()
            return False
        return True

    def _record(self, plans: list[Planned]) -> None:
        confirmed = self.clock()
        states: dict[str, dict[str, Any]] = {}
        audit, fires, closed = [], [], []
        for plan in plans:
            job, out = plan.job, plan.out
            lag = (confirmed - plan.slot).total_seconds() if out is not None and plan.slot else 0.0
            audit.append({"job_id": job.id, "slot": plan.slot, "outcome": plan.outcome,
                          "fire_id": out.fire_id if out else plan.superseded,
                          "message_id": out.message_id if out else None, "lag_ms": lag * 1000 if out else None,
                          "detail": plan.detail, "token": self.token, "recorded_at": confirmed})
            if plan.superseded:
                closed.append(plan.superseded)
                continue
            self.last_outcome[job.id] = plan.outcome
            if out is not None:
                self.last_fired[job.id] = (out.fire_id, out.message_id, confirmed)
                fires.append({"fire_id": out.fire_id, "job_id": job.id, "message_id": out.message_id,
                              "published_at": confirmed})
            states[job.id] = self._state_row(job.id)
            log_outcome(plan, lag)
            if plan.slot is not None:
                metric("observe_fire", job.id, plan.slot, lag, plan.outcome)
        for job_id in states:
            self._push(job_id)
        if closed:
            self.store.close_fires(closed)
        self._save(states=states, audit=audit, fires=fires)

    def _save(self, states: dict[str, dict[str, Any]] | None = None, audit: list[dict[str, Any]] | None = None,
              fires: list[dict[str, Any]] | None = None) -> None:
        unsaved = self._unsaved
        unsaved.states.update(states or {})
        unsaved.audit += audit or []
        unsaved.fires += fires or []
        if self.token is None or not (unsaved.states or unsaved.audit or unsaved.fires):
            return
        try:
            self.store.commit(token=self.token, states=list(unsaved.states.values()), audit=unsaved.audit,
                              fires=unsaved.fires)
        except FencedOut as exc:
            self.step_down(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the database is down: keep the rows, write them later
            self._error(f"cannot record slots yet: {exc!r}")
            return
        self._unsaved = _Unsaved()

    # -- the loop ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read pauses, runtime jobs and a changed jobs file; write a heartbeat."""
        mtime = self._mtime()
        changed = mtime != self._config_mtime
        if changed:
            self._config_mtime = mtime
            try:
                config = load_config(self.config_path, self.settings)
                self.config_jobs = {job.id: job for job in config.jobs}
                logger.info("[scheduler] reloaded %s: %d jobs", self.config_path, len(config.jobs))
            except ConfigError as exc:
                self._error(f"jobs file not reloaded, keeping the previous one: {exc}")
                changed = False
        self._reload_shared(changed)
        if self._unsaved.states or self._unsaved.audit:
            self._save()
        self.store.heartbeat(self.instance_id, started_at=self.started_at, leader=self.token is not None,
                             token=self.token, errors=self.errors, last_error=self.last_error)
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
        lease_age = None if self.lease_seen_at is None else now - self.lease_seen_at
        if lease_age is None or lease_age > LEASE_TTL:
            problems.append("lease store (Redis or the database) not answering"
                            + ("" if lease_age is None else f" for {lease_age:.0f} s"))
        store_age = None if self.store_seen_at is None else now - self.store_seen_at
        if store_age is None or store_age > 3 * REFRESH:
            problems.append("scheduler state in the database not read"
                            + ("" if store_age is None else f" for {store_age:.0f} s"))
        leader = self.token is not None
        if leader and not getattr(self.publisher, "connected", True):
            problems.append("leads without a connection to RabbitMQ")
        return {"live": stuck <= LOOP_STUCK, "ready": not problems, "problems": problems,
                "instance": self.instance_id, "leader": leader, "token": self.token,
                "jobs": len(self.jobs), "errors": self.errors}

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, then release the lease."""
        try:
            while not stop.is_set():
                mono = self.loop_at = time.monotonic()
                if mono >= self._next_renew:
                    self.step_lease()
                    self._next_renew = mono + RENEW
                if mono >= self._next_refresh:
                    self._guarded(self.refresh)
                    self._next_refresh = mono + REFRESH
                if self.token is not None:
                    self._guarded(lambda: self.tick(self.clock()))
                    self.publisher.keepalive()  # and connects ahead of the first slot
                wait = min(self._next_renew, self._next_refresh) - time.monotonic()
                nxt = self.next_run() if self.token is not None else None
                if nxt is not None:
                    wait = min(wait, (nxt - self.clock()).total_seconds())
                if self._pending is not None:
                    wait = min(wait, 1.0)
                stop.wait(max(0.0, wait))
        finally:
            self.release()
            self.publisher.close()

    def _guarded(self, fn: Callable[[], Any]) -> None:
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
