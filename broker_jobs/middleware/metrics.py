"""Worker-side metrics and alerts: Dramatiq's Prometheus middleware, set up right, and ours.

:func:`prometheus_middleware` builds Dramatiq's middleware with the exporter
replaced: Dramatiq's own reads its host, port and directory from variables the
``dramatiq`` master never sees (the master imports none of our code), so the
exporter here reads ``METRICS_HOST``, ``METRICS_PORT`` and ``METRICS_DIR``
itself.  :class:`JobMetrics` counts what Dramatiq does not (rate-limit
deferrals, dead letters, runs by outcome, the last success of each schedule)
and raises the failed-job alert.
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq

from .. import alerts, metrics, prometheus_env


def prometheus_middleware() -> dramatiq.Middleware:
    """Dramatiq's Prometheus middleware, in the host's multiprocess directory, exported on ``METRICS_PORT``."""
    # Dramatiq's module reads dramatiq_prom_db when imported: configure first.
    prometheus_env.configure()
    from dramatiq.middleware.prometheus import Prometheus

    class JobsPrometheus(Prometheus):
        @property
        def forks(self) -> list[Any]:
            return [prometheus_env.serve_worker_metrics]

        def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
            # Producers (CLI, scheduler, web app) never boot a worker: the counters do not exist there.
            if hasattr(self, "total_retried_messages"):
                super().after_enqueue(broker, message, delay)

    return JobsPrometheus()


def job_id_of(message: Any) -> str | None:
    """The schedule id of a message the scheduler fired (``fire_id = job_id@slot``)."""
    fire_id = message.options.get("fire_id")
    return str(fire_id).split("@", 1)[0] if fire_id else None


class JobMetrics(dramatiq.Middleware):
    """Counts outcomes, records schedule successes, alerts on dead jobs."""

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.queue_name.endswith(".DQ"):  # a delay ended: the run comes later
            return
        outcome = message.options.get("bj_outcome")
        if outcome == "deferred":
            metrics.rate_limited(message.queue_name, message.actor_name)
            return
        if outcome == "skipped":
            metrics.run_finished(message.queue_name, message.actor_name, "skipped")
            return
        failed = getattr(message, "_exception", None) is not None or message.options.get("bj_error")
        metrics.run_finished(message.queue_name, message.actor_name, "retrying" if failed else "succeeded")
        job_id = job_id_of(message)
        if job_id and not failed:
            metrics.job_succeeded(job_id, time.time())

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        queue = message.queue_name.removesuffix(".DQ").removesuffix(".XQ")
        metrics.dead_lettered(queue, message.actor_name)
        metrics.run_finished(queue, message.actor_name, "dead")
        exc = getattr(message, "_exception", None)
        error = str(message.options.get("bj_error") or (f"{type(exc).__name__}: {exc}" if exc else "failed"))
        retries = int(message.options.get("retries", 0))
        attempts = retries + 1 if message.options.get("bj_error") else max(1, retries)
        alerts.job_failed(job_id_of(message) or message.actor_name, message.message_id, queue, error, attempts)
