"""Our own Prometheus metrics, beside Dramatiq's, in the host's multiprocess directory.

The package, one module per part, each importing only the ones listed before it:

* :mod:`.env`: multiprocess mode, set up before ``prometheus_client`` is imported;
* :mod:`.resources`: this process's CPU time and memory;
* :mod:`.labels`: bounded label values (undeclared actors and queues are ``unknown``);
* :mod:`.definitions`: our metric objects, the slot outcomes, ``render``;
* :mod:`.batch`: worker-thread updates summed and written once a second;
* :mod:`.exporter`: the HTTP server of ``/metrics`` and the probes, with port takeover;
* here: the functions the scheduler and the middleware call.

Every process (worker, scheduler, web app) writes into the same directory;
whichever process holds ``METRICS_PORT`` serves all of it.  Every function here
is cheap and never raises: metrics must not break a job or the scheduler.  They
record only: alerts are sent by whoever decides (the scheduler for a missed
slot, :mod:`broker_jobs.middleware.metrics` for a dead job).

Exported series:

* ``broker_jobs_schedule_next_fire_timestamp{job}``, ``..._last_fire_timestamp{job}``,
  ``..._last_success_timestamp{job}`` (seconds since the epoch; next fire is NaN while
  paused or with no next slot, never a false 0);
* ``broker_jobs_schedule_fire_lag_seconds{job}`` histogram (publish time minus slot time);
* ``broker_jobs_schedule_slots_total{job,outcome}`` (:data:`SLOT_OUTCOMES`);
* ``broker_jobs_scheduler_leader`` (1 while this host's scheduler holds the lease);
* ``broker_jobs_rate_limited_total{queue,actor}``, ``broker_jobs_dead_lettered_total{queue,actor}``,
  ``broker_jobs_job_runs_total{queue,actor,status}`` (finished runs, by outcome);
* ``broker_jobs_process_cpu_seconds{role,pid}``, ``broker_jobs_process_resident_memory_bytes{role,pid}``:
  each live worker and scheduler process's CPU time and memory (:mod:`.resources`), sampled with its
  health beat; a stopped process's series go (``liveall``).

Queue depths and history counts are cluster-wide, computed on scrape by the
web app's ``/metrics`` (:mod:`broker_jobs.api.collector`).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from . import resources
from .definitions import PUBLISHED, SLOT_OUTCOMES, get, multiprocess_enabled, render, safely

__all__ = [
    "PUBLISHED", "SLOT_OUTCOMES", "dead_lettered", "job_succeeded", "multiprocess_enabled", "observe_fire",
    "process_resources", "rate_limited", "render", "run_counter", "run_finished", "safely", "set_leader",
    "set_next_fire",
]

logger = logging.getLogger(__name__)


def _epoch(ts: datetime | float | None) -> float | None:
    if ts is None:
        return None
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def observe_fire(job_id: str, slot: datetime, lag_seconds: float, outcome: str) -> None:
    """Record what the scheduler did with one slot of ``job_id`` (metrics only, no alert).

    Parameters:
      job_id: The schedule's id.
      slot: The slot's time.
      lag_seconds: Publish time minus slot time (0 when nothing was published).
      outcome: One of :data:`SLOT_OUTCOMES`.
    """

    def record() -> None:
        m = get()
        m.slots.labels(job_id, outcome).inc()
        if outcome in PUBLISHED:
            m.last_fire.labels(job_id).set(slot.timestamp() + max(0.0, lag_seconds))
            m.fire_lag.labels(job_id).observe(max(0.0, lag_seconds))

    safely("fire", record)


def set_next_fire(job_id: str, ts: datetime | float | None) -> None:
    """Record when ``job_id`` fires next (``None``: paused or no next slot).

    No next slot is exported as NaN, not 0: a 0 reads as "due since 1970" on the
    dashboard, and a multiprocess gauge cannot drop one label set once written.
    """
    def record() -> None:
        value = _epoch(ts)
        get().next_fire.labels(job_id).set(math.nan if value is None else value)

    safely("next fire", record)


def set_leader(is_leader: bool) -> None:
    """Record whether this process's scheduler holds the lease."""
    safely("leader", lambda: get().leader.set(1 if is_leader else 0))


def job_succeeded(job_id: str, ts: float) -> None:
    """Record a successful run of scheduled job ``job_id`` at ``ts`` (unix seconds)."""
    safely("success", lambda: get().last_success.labels(job_id).set(ts))


_run_counters: dict[tuple[str, str, str], Any] = {}


def _run_counter(queue: str, actor: str, status: str) -> Any:
    # Looking a labelled child up costs more than incrementing it: keep them (one per
    # queue, actor and status, a small set).
    key = (queue, actor, status)
    child = _run_counters.get(key)
    if child is None:
        child = _run_counters[key] = get().runs.labels(queue, actor, status)
    return child


def run_counter(queue: str, actor: str, status: str) -> Any | None:
    """The labelled child of ``broker_jobs_job_runs_total`` (None if metrics are unavailable)."""
    try:
        return _run_counter(queue, actor, status)
    except Exception as exc:  # metrics never break the caller
        logger.debug("[metrics] run not recorded: %s", exc)
        return None


def run_finished(queue: str, actor: str, status: str) -> None:
    """Count one finished run (succeeded, retrying, dead, skipped)."""
    child = run_counter(queue, actor, status)
    if child is not None:
        safely("run", child.inc)


def process_resources(role: str) -> None:
    """Record this process's CPU time and resident memory under ``role`` (worker, scheduler)."""
    cpu, rss = resources.sample()

    def record() -> None:
        get().process_cpu.labels(role).set(cpu)
        if rss is not None:
            get().process_memory.labels(role).set(rss)

    safely("process resources", record)


def rate_limited(queue: str, actor: str) -> None:
    """Count one run delayed by its rate limit."""
    safely("rate limit", lambda: get().rate_limited.labels(queue, actor).inc())


def dead_lettered(queue: str, actor: str) -> None:
    """Count one dead-lettered message."""
    safely("dead letter", lambda: get().dead_lettered.labels(queue, actor).inc())
