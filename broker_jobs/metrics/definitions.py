"""Our Prometheus metric objects, created on first use in each process.

They are created lazily (:func:`get`) because ``prometheus_client`` may only be
imported once :mod:`.env` has set the multiprocess directory, and because a
forked worker process must create its own.  Every process (worker, scheduler,
web app) writes into the host's directory; the exporter serves all of it.

The slot outcomes come from the message protocol's enums (:mod:`broker_jobs.protocol`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from ..protocol import PublishOutcome, SlotOutcome
from .env import client

logger = logging.getLogger(__name__)

#: What the scheduler can do with a slot (``broker_jobs_schedule_slots_total{outcome}``).
SLOT_OUTCOMES = tuple(outcome.value for outcome in SlotOutcome)
#: Outcomes that published a message for the slot (they move the last-fire time and the lag).
PUBLISHED = tuple(outcome.value for outcome in PublishOutcome)

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    """The metric objects of this process, in a registry of their own."""

    def __init__(self) -> None:
        prom = client()
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
        # Each live worker and scheduler process's own use (a pid label per process; gone with the process).
        self.process_cpu = prom.Gauge("broker_jobs_process_cpu_seconds",
                                      "CPU time (user + system) this process has used, seconds.", ["role"],
                                      registry=r, multiprocess_mode="liveall")
        self.process_memory = prom.Gauge("broker_jobs_process_resident_memory_bytes",
                                         "Resident memory of this process, bytes.", ["role"],
                                         registry=r, multiprocess_mode="liveall")


_metrics: Metrics | None = None
_lock = threading.Lock()


def get() -> Metrics:
    """This process's metric objects (created on the first call)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = Metrics()
                atexit.register(_mark_dead)
    return _metrics


def _mark_dead() -> None:
    # Drops this process's "live" gauges (the leader flag) from the host's export.
    try:
        if multiprocess_enabled():
            from prometheus_client import multiprocess  # deferred: loaded after env.configure()

            multiprocess.mark_process_dead(os.getpid())
    except Exception:
        pass


def multiprocess_enabled() -> bool:
    """Whether values are shared through the multiprocess directory."""
    client()
    from prometheus_client import values  # deferred: loaded after env.configure()

    return values.ValueClass is not values.MutexValue


def safely(what: str, fn: Callable[..., object], *args: Any) -> None:
    """``fn(*args)``; a failure is logged at DEBUG, never raised: metrics never break the caller."""
    try:
        fn(*args)
    except Exception as exc:  # metrics never break the caller
        logger.debug("[metrics] %s not recorded: %s", what, exc)


def render() -> tuple[bytes, str]:
    """This host's metrics in the text exposition format, and its content type.

    In multiprocess mode: every file in the directory (Dramatiq's and ours, from
    every process); otherwise this process's own metrics.
    """
    prom = client()
    if multiprocess_enabled():
        from prometheus_client import multiprocess  # deferred: loaded after env.configure()

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = get().registry
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
