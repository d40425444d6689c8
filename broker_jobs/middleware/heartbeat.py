"""Each worker process tells the host's probe server how it is doing.

The ``dramatiq`` master's fork that serves ``METRICS_PORT`` cannot see inside
the worker processes, so every worker process writes its state into the
host's metrics directory (:mod:`broker_jobs.probes`) from boot to shutdown:

* live: every worker thread is alive (a dead one never comes back);
* ready: live, at least one consumer, and every consumer thread holds an open
  connection and channel to RabbitMQ (Dramatiq reconnects by itself; until it
  has, the process takes no work), and the worker is not shutting down.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from .. import metrics, probes
from ..metrics import env as metrics_env


def worker_state(worker: dramatiq.Worker, stopping: bool = False) -> dict[str, Any]:
    """What a Dramatiq ``Worker`` can say about itself right now."""
    problems: list[str] = []
    threads = list(getattr(worker, "workers", []))
    alive = sum(1 for t in threads if t.is_alive())
    if alive < len(threads) or not threads:
        problems.append(f"{alive} of {len(threads)} worker threads alive")
    consumers: dict[str, bool] = {}
    for queue, thread in dict(getattr(worker, "consumers", {})).items():
        consumer = getattr(thread, "consumer", None)
        connection = getattr(consumer, "connection", None)
        channel = getattr(consumer, "channel", None)
        consumers[queue] = bool(thread.is_alive() and consumer is not None
                                and (connection is None or connection.is_open)
                                and (channel is None or channel.is_open))
    down = sorted(q for q, ok in consumers.items() if not ok)
    if not consumers:
        problems.append("no queue consumed")
    elif down:
        problems.append(f"not connected to RabbitMQ for {', '.join(down)}")
    if stopping:
        problems.append("shutting down")
    live = bool(threads) and alive == len(threads)
    return {"live": live, "ready": live and bool(consumers) and not down and not stopping,
            "problems": problems, "threads": {"alive": alive, "total": len(threads)}, "consumers": consumers}


class WorkerHeartbeat(dramatiq.Middleware):
    """Writes this worker process's state every :data:`~broker_jobs.probes.BEAT` seconds."""

    def __init__(self) -> None:
        self._beat: probes.Beat | None = None
        self._stopping = False

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        directory = metrics_env.configure()
        self._stopping = False
        self._beat = probes.Beat(directory, "worker", lambda: worker_state(worker, self._stopping),
                                 on_beat=lambda: metrics.process_resources("worker")).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stopping = True
        if self._beat is not None:
            self._beat.beat()  # not ready from now on, without waiting for the next beat

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._beat is not None:
            self._beat.stop()
            self._beat = None
