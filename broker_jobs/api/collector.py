"""The web app's ``/metrics``: cluster-wide state, computed when Prometheus scrapes.

Queue depths and history counts describe the whole system, not one worker, so
they are exported once, here, rather than by every worker host:

* ``broker_jobs_queue_messages{queue,state}`` with state ready, unacked, delayed, dead;
* ``broker_jobs_queue_consumers{queue}``;
* ``broker_jobs_dead_letter_oldest_age_seconds{queue}``;
* ``broker_jobs_queue_degraded{queue}`` (1 when the queue exists with other arguments than
  ours, see :mod:`broker_jobs.topology`; 0 for every other queue of ours);
* ``broker_jobs_history_runs{status}`` (runs kept in the history, by status);
* ``broker_jobs_collector_up{source}`` (1 when the source answered this scrape):
  ``rabbitmq``, ``rabbitmq_management``, ``database``.

A figure that cannot be known is left out, never exported as 0: without the
management API (``rabbitmq_management`` 0) there is no ``unacked`` or
``delayed`` series; with the database down (``database`` 0) no history counts
and no dead-letter ages; an age is exported only for a queue whose dead letters
are archived.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..metrics import env as metrics_env
from ..queues import oldest_dead_ages, queue_stats
from ..settings import Settings
from ..topology import degraded_queues, family


def history_counts(settings: Settings) -> dict[str, int]:
    """Runs kept in the history, by status."""
    from ..store.db import get_engine  # deferred: SQLAlchemy
    from ..store.queries import run_counts  # deferred: SQLAlchemy

    return run_counts(get_engine(settings.database_url), by="status")


def _degraded_family(settings: Settings, names: list[str]) -> Any:
    from prometheus_client.core import GaugeMetricFamily  # deferred: loaded after env.configure()

    found = degraded_queues(settings, names)
    gauge = GaugeMetricFamily("broker_jobs_queue_degraded",
                              "1 when the queue exists with other arguments than ours (broker-jobs queues repair).",
                              labels=["queue"])
    for name in names:
        for queue in family(name):
            gauge.add_metric([queue], 1.0 if queue in found else 0.0)
    return gauge


class StateCollector:
    """Collects queue depths (RabbitMQ) and history counts (database) on each scrape.

    Parameters:
      settings: The settings.
      cache_seconds: Reuse one reading for this long (several Prometheus replicas scraping).
    """

    def __init__(self, settings: Settings, cache_seconds: float = 2.0) -> None:
        self.settings = settings
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, list[Any]] | None = None

    def collect(self) -> Iterator[Any]:
        if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
            yield from self._cached[1]
            return
        families = list(self._read())
        self._cached = (time.monotonic(), families)
        yield from families

    def _read(self) -> Iterator[Any]:
        metrics_env.configure()  # the multiprocess directory is set before prometheus_client loads
        from prometheus_client.core import GaugeMetricFamily  # deferred: loaded after env.configure()

        up = GaugeMetricFamily("broker_jobs_collector_up", "1 when the source answered this scrape.",
                               labels=["source"])
        try:
            stats = queue_stats(self.settings)
            up.add_metric(["rabbitmq"], 1.0)
            try:
                yield _degraded_family(self.settings, [s.queue for s in stats])
            except Exception:  # noqa: BLE001 - unknown: the gauge is left out, never a false 0
                pass
        except Exception:  # noqa: BLE001 - a scrape reports the source as down
            stats = None
            up.add_metric(["rabbitmq"], 0.0)
        if stats is not None:
            # Only the management API knows unacked and delayed counts (queues.py).
            managed = all(s.unacked is not None and s.delayed is not None for s in stats)
            up.add_metric(["rabbitmq_management"], 1.0 if managed else 0.0)
            yield from self._depths(stats)
        try:
            runs = GaugeMetricFamily("broker_jobs_history_runs", "Runs kept in the history, by status.",
                                     labels=["status"])
            counts = history_counts(self.settings)
            ages = oldest_dead_ages(self.settings) if stats else {}
            for status in sorted({"running", "succeeded", "retrying", "dead", "skipped", "failed", *counts}):
                runs.add_metric([status], float(counts.get(status, 0)))
            yield runs
            if stats is not None:
                yield self._oldest(stats, ages)
            up.add_metric(["database"], 1.0)
        except Exception:  # noqa: BLE001 - a scrape reports the source as down
            up.add_metric(["database"], 0.0)
        yield up

    @staticmethod
    def _depths(stats: list[Any]) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily  # deferred: loaded after env.configure()

        depth = GaugeMetricFamily("broker_jobs_queue_messages", "Messages in a queue, by state.",
                                  labels=["queue", "state"])
        consumers = GaugeMetricFamily("broker_jobs_queue_consumers", "Consumers of a queue.", labels=["queue"])
        for s in stats:
            for state in ("ready", "unacked", "delayed", "dead"):
                value = getattr(s, state)
                if value is not None:  # unknown: no series rather than a false 0
                    depth.add_metric([s.queue, state], float(value))
            consumers.add_metric([s.queue], float(s.consumers))
        yield from (depth, consumers)

    @staticmethod
    def _oldest(stats: list[Any], ages: dict[str, float]) -> Any:
        from prometheus_client.core import GaugeMetricFamily  # deferred: loaded after env.configure()

        oldest = GaugeMetricFamily("broker_jobs_dead_letter_oldest_age_seconds",
                                   "Age of the oldest dead letter of a queue.", labels=["queue"])
        for s in stats:
            if not s.dead:
                oldest.add_metric([s.queue], 0.0)
            elif s.queue in ages:  # dead letters not archived yet: age unknown, left out
                oldest.add_metric([s.queue], ages[s.queue])
        return oldest
