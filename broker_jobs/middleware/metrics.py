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
from dramatiq.broker import MessageProxy
from dramatiq.common import current_millis

from .. import alerts, metrics
from ..metrics import env
from ..metrics.batch import batch
from ..metrics.exporter import serve_worker_metrics
from ..metrics.labels import labels
from ..protocol import BJ_ERROR, BJ_OUTCOME, FIRE_ID, DeliveryOutcome, FireId, RunStatus, dead_attempts
from ..protocol import job_id_of as protocol_job_id


def prometheus_middleware() -> dramatiq.Middleware:
    """Dramatiq's Prometheus middleware, in the host's multiprocess directory, exported on ``METRICS_PORT``."""
    # Dramatiq's module reads dramatiq_prom_db when imported: configure first.
    env.configure()
    from dramatiq.middleware.prometheus import Prometheus  # deferred: it reads dramatiq_prom_db on import

    class JobsPrometheus(Prometheus):
        @property
        def forks(self) -> list[Any]:
            return [serve_worker_metrics]

        def __init__(self) -> None:
            super().__init__()
            # Dramatiq looks the labelled children up four times per message; looking one up
            # costs more than updating it. One entry per (queue, actor): a small set.
            self._children: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}

        # Dramatiq creates its metrics in after_process_boot, which only the ``dramatiq``
        # command emits. Producers (CLI, scheduler, web app) and workers started in-process
        # (tests, embedding) never see it: there the hooks do nothing instead of raising.
        def _booted(self) -> bool:
            return hasattr(self, "total_retried_messages")

        # Dramatiq labels by the message's own queue and actor names: it sees a copy
        # carrying bounded ones (see broker_jobs.metrics.labels).
        @staticmethod
        def _bounded(broker: dramatiq.Broker, message: Any) -> Any:
            queue, actor = labels(broker, message)
            if (queue, actor) == (message.queue_name, message.actor_name):
                return message
            return message.copy(queue_name=queue, actor_name=actor)

        def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
            if self._booted():
                super().after_enqueue(broker, self._bounded(broker, message), delay)  # type: ignore[no-untyped-call]  # Dramatiq's Prometheus middleware is unannotated

        def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
            if self._booted():
                super().after_nack(broker, self._bounded(broker, message))  # type: ignore[no-untyped-call]  # Dramatiq's Prometheus middleware is unannotated

        def before_delay_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
            if self._booted():
                super().before_delay_message(broker, self._bounded(broker, message))  # type: ignore[no-untyped-call]  # Dramatiq's Prometheus middleware is unannotated

        def _labelled(self, broker: dramatiq.Broker, message: Any) -> tuple[Any, Any, Any, Any] | None:
            key = labels(broker, message)
            children = self._children.get(key)
            if children is None:
                if not self._booted():
                    return None
                children = self._children[key] = (
                    self.inprogress_messages.labels(*key), self.message_durations.labels(*key),
                    self.total_messages.labels(*key), self.total_errored_messages.labels(*key),
                )
            return children

        def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
            children = self._labelled(broker, message)
            if children is None:
                return
            if self.delayed_messages and message.message_id in self.delayed_messages:
                self.delayed_messages.remove(message.message_id)
                self.inprogress_delayed_messages.labels(*labels(broker, message)).dec()
            batch.inc(children[0], 1)
            self.message_start_times[message.message_id] = current_millis()

        def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
                                  exception: BaseException | None = None) -> None:
            children = self._labelled(broker, message)
            if children is None:
                return
            inprogress, durations, total, errored = children
            started = self.message_start_times.pop(message.message_id, None)
            batch.observe(durations, current_millis() - started if started is not None else 0)
            batch.inc(inprogress, -1)
            batch.inc(total, 1)
            if exception is not None:
                batch.inc(errored, 1)

        after_skip_message = after_process_message

    return JobsPrometheus()


def job_id_of(message: Any) -> str | None:
    """The schedule id of a message the scheduler fired (``fire_id = job_id@slot``)."""
    return protocol_job_id(message.options.get(FIRE_ID))


class JobMetrics(dramatiq.Middleware):
    """Counts outcomes, records schedule successes, alerts on dead jobs.

    It also runs the process's :data:`broker_jobs.metrics.batch.batch` (Dramatiq's counters and
    ours, applied once a second) from worker boot to worker shutdown.
    """

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        batch.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        batch.stop()  # before Prometheus marks this process dead

    def after_ack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.queue_name.endswith(".DQ"):  # a delay ended: the run comes later
            return
        queue, actor = labels(broker, message)
        options = message.options
        outcome = options.get(BJ_OUTCOME)
        if outcome == DeliveryOutcome.DEFERRED:
            metrics.rate_limited(queue, actor)
            return
        if outcome == DeliveryOutcome.SKIPPED:
            metrics.run_finished(queue, actor, RunStatus.SKIPPED.value)
            return
        failed = getattr(message, "_exception", None) is not None or options.get(BJ_ERROR)
        runs = metrics.run_counter(queue, actor, RunStatus.RETRYING.value if failed else RunStatus.SUCCEEDED.value)
        if runs is not None:
            batch.inc(runs, 1)
        fire_id = options.get(FIRE_ID)
        if not failed and fire_id:
            metrics.job_succeeded(FireId.parse(str(fire_id)).job_id, time.time())

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        queue = message.queue_name.removesuffix(".DQ").removesuffix(".XQ")
        label_queue, actor = labels(broker, message.copy(queue_name=queue))
        metrics.dead_lettered(label_queue, actor)
        metrics.run_finished(label_queue, actor, RunStatus.DEAD.value)
        exc = getattr(message, "_exception", None)
        error = str(message.options.get(BJ_ERROR) or (f"{type(exc).__name__}: {exc}" if exc else "failed"))
        attempts = dead_attempts(message.options)
        alerts.job_failed(job_id_of(message) or message.actor_name, message.message_id, queue, error, attempts)
