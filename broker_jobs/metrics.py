"""Our own Prometheus metrics, beside Dramatiq's, in the host's multiprocess directory.

Every process (worker, scheduler, web app) writes into the same directory
(see :mod:`broker_jobs.prometheus_env`); the worker master's exporter on
``METRICS_PORT`` serves all of it.  Every function here is cheap and never
raises: metrics must not break a job or the scheduler.

Exported series:

* ``broker_jobs_schedule_next_fire_timestamp{job}``, ``..._last_fire_timestamp{job}``,
  ``..._last_success_timestamp{job}`` (seconds since the epoch; next fire is NaN while
  paused or with no next slot, never a false 0);
* ``broker_jobs_schedule_fire_lag_seconds{job}`` histogram (publish time minus slot time);
* ``broker_jobs_schedule_slots_total{job,outcome}`` (fired, skipped_overlap,
  skipped_stale, missed, caught_up, backfilled);
* ``broker_jobs_scheduler_leader`` (1 while this host's scheduler holds the lease);
* ``broker_jobs_rate_limited_total{queue,actor}``, ``broker_jobs_dead_lettered_total{queue,actor}``,
  ``broker_jobs_job_runs_total{queue,actor,status}`` (finished runs, by outcome).

Queue depths and history counts are cluster-wide, computed on scrape by the
web app's ``/metrics`` (:mod:`broker_jobs.api.collector`).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
from datetime import datetime
from typing import Any

from . import prometheus_env
from .protocol import PublishOutcome, SlotOutcome

logger = logging.getLogger(__name__)

OUTCOMES = tuple(outcome.value for outcome in SlotOutcome)
#: Outcomes that published a message for the slot (a run-now's ``manual`` included).
PUBLISHED = tuple(outcome.value for outcome in PublishOutcome)

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def _prom() -> Any:
    """``prometheus_client``, imported only once the multiprocess directory is set."""
    prometheus_env.configure()
    import prometheus_client

    return prometheus_client


class _Metrics:
    """The metric objects, created on first use in each process."""

    def __init__(self) -> None:
        prom = _prom()
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.next_fire = prom.Gauge("broker_jobs_schedule_next_fire_timestamp",
                                    "When the job's next slot fires (unix seconds).", ["job"],
                                    registry=r, multiprocess_mode="mostrecent")
        self.last_fire = prom.Gauge("broker_jobs_schedule_last_fire_timestamp",
                                    "When the job's last slot was published (unix seconds).", ["job"],
                                    registry=r, multiprocess_mode="max")
        self.last_success = prom.Gauge("broker_jobs_schedule_last_success_timestamp",
                                       "When a run of the job last succeeded (unix seconds).", ["job"],
                                       registry=r, multiprocess_mode="max")
        self.fire_lag = prom.Histogram("broker_jobs_schedule_fire_lag_seconds",
                                       "Publish time minus slot time.", ["job"], buckets=_LAG_BUCKETS,
                                       registry=r)
        self.slots = prom.Counter("broker_jobs_schedule_slots", "Schedule slots by outcome.",
                                  ["job", "outcome"], registry=r)
        self.leader = prom.Gauge("broker_jobs_scheduler_leader",
                                 "1 while this host's scheduler holds the lease.", registry=r,
                                 multiprocess_mode="livemax")
        self.rate_limited = prom.Counter("broker_jobs_rate_limited", "Runs delayed by a rate limit.",
                                         ["queue", "actor"], registry=r)
        self.dead_lettered = prom.Counter("broker_jobs_dead_lettered", "Messages dead-lettered.",
                                          ["queue", "actor"], registry=r)
        self.runs = prom.Counter("broker_jobs_job_runs", "Finished runs by outcome.",
                                 ["queue", "actor", "status"], registry=r)


_metrics: _Metrics | None = None
_lock = threading.Lock()


def _get() -> _Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _Metrics()
                atexit.register(_mark_dead)
    return _metrics


def _mark_dead() -> None:
    # Drops this process's "live" gauges (the leader flag) from the host's export.
    try:
        if multiprocess_enabled():
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
    except Exception:
        pass


def multiprocess_enabled() -> bool:
    """Whether values are shared through the multiprocess directory."""
    _prom()
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


def safely(what: str, fn: Any, *args: Any) -> None:
    """``fn(*args)``; a failure is logged at DEBUG, never raised: metrics never break the caller."""
    try:
        fn(*args)
    except Exception as exc:  # metrics never break the caller
        logger.debug("[metrics] %s not recorded: %s", what, exc)


def _epoch(ts: datetime | float | None) -> float | None:
    if ts is None:
        return None
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def observe_fire(job_id: str, slot: datetime, lag_seconds: float, outcome: str) -> None:
    """Record what the scheduler did with one slot of ``job_id``.

    Parameters:
      job_id: The schedule's id.
      slot: The slot's time.
      lag_seconds: Publish time minus slot time (0 when nothing was published).
      outcome: fired, skipped_overlap, skipped_stale, missed, caught_up or backfilled.
    """

    def record() -> None:
        m = _get()
        m.slots.labels(job_id, outcome).inc()
        if outcome in PUBLISHED:
            m.last_fire.labels(job_id).set(_epoch(slot) + max(0.0, lag_seconds))  # type: ignore[operator]
            m.fire_lag.labels(job_id).observe(max(0.0, lag_seconds))

    safely("fire", record)
    if outcome == "missed":
        from . import alerts

        alerts.missed_slot(job_id, slot)


def set_next_fire(job_id: str, ts: datetime | float | None) -> None:
    """Record when ``job_id`` fires next (``None``: paused or no next slot).

    No next slot is exported as NaN, not 0: a 0 reads as "due since 1970" on the
    dashboard, and a multiprocess gauge cannot drop one label set once written.
    """
    def record() -> None:
        value = _epoch(ts)
        _get().next_fire.labels(job_id).set(math.nan if value is None else value)

    safely("next fire", record)


def set_leader(is_leader: bool) -> None:
    """Record whether this process's scheduler holds the lease."""
    safely("leader", lambda: _get().leader.set(1 if is_leader else 0))


def job_succeeded(job_id: str, ts: float) -> None:
    """Record a successful run of scheduled job ``job_id`` at ``ts`` (unix seconds)."""
    safely("success", lambda: _get().last_success.labels(job_id).set(ts))


_run_counters: dict[tuple[str, str, str], Any] = {}


def _run_counter(queue: str, actor: str, status: str) -> Any:
    # Looking a labelled child up costs more than incrementing it: keep them (one per
    # queue, actor and status, a small set).
    key = (queue, actor, status)
    child = _run_counters.get(key)
    if child is None:
        child = _run_counters[key] = _get().runs.labels(queue, actor, status)
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


def rate_limited(queue: str, actor: str) -> None:
    """Count one run delayed by its rate limit."""
    safely("rate limit", lambda: _get().rate_limited.labels(queue, actor).inc())


def dead_lettered(queue: str, actor: str) -> None:
    """Count one dead-lettered message."""
    safely("dead letter", lambda: _get().dead_lettered.labels(queue, actor).inc())


def render() -> tuple[bytes, str]:
    """This host's metrics in the text exposition format, and its content type.

    In multiprocess mode: every file in the directory (Dramatiq's and ours, from
    every process); otherwise this process's own metrics.
    """
    prom = _prom()
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = _get().registry
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
