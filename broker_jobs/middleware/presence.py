"""Each worker process publishes a heartbeat the console lists: who it is and what it runs.

Every :data:`BEAT_SECONDS` a daemon thread upserts one ``worker_beats`` row per process (host, pid,
queues consumed, worker threads, the jobs running now, the package version) into ``DATABASE_URL``;
a clean shutdown deletes it.  A process that died without one leaves its row behind: the console
flags a heartbeat older than :data:`STALE_AFTER` seconds as stale.  A failed write is logged once
per outage and never touches the jobs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any

import dramatiq

from ..clock import utc_now

logger = logging.getLogger(__name__)

#: Seconds between two heartbeats of a worker process.
BEAT_SECONDS = 5.0
#: A heartbeat older than this many seconds is stale: its process is gone or stuck.
STALE_AFTER = 3 * BEAT_SECONDS


def _version() -> str:
    # The installed distribution's (importing broker_jobs' own __version__ here would be an import cycle).
    try:
        return metadata.version("broker-jobs")
    except metadata.PackageNotFoundError:
        return "unknown"


class WorkerPresence(dramatiq.Middleware):
    """Publishes this worker process's heartbeat.

    Parameters:
      database_url: Where the heartbeats go (``DATABASE_URL``).
      running: The jobs running now (each a dict: message id, actor, queue, start); the
        history middleware's :meth:`~broker_jobs.middleware.history.History.running_jobs`.
      interval: Seconds between heartbeats.
    """

    def __init__(self, database_url: str | None, running: Callable[[], list[dict[str, Any]]],
                 interval: float = BEAT_SECONDS) -> None:
        self.database_url = database_url
        self.running = running
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.worker_id = ""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        started = utc_now()
        host, pid = socket.gethostname(), os.getpid()
        version = _version()
        self.worker_id = f"{host}:{pid}"

        def beat() -> dict[str, Any]:
            queues = sorted(dict(getattr(worker, "consumers", {})) or broker.get_declared_queues())
            return {"worker_id": self.worker_id, "host": host, "pid": pid, "version": version,
                    "queues": [q for q in queues if not q.endswith((".DQ", ".XQ"))],
                    "threads": len(getattr(worker, "workers", [])), "current": self.running(),
                    "started_at": started, "heartbeat_at": utc_now()}

        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(beat,), name="worker-presence", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None
        try:
            self._queries().drop_beat(self._engine(), self.worker_id)
        except Exception as exc:  # noqa: BLE001 - the row goes stale instead; shutdown goes on
            logger.warning("[presence] heartbeat of %s not removed: %r", self.worker_id, exc)

    def _queries(self) -> Any:
        from ..store import queries  # deferred: SQLAlchemy, in worker processes only (senders build this too)

        return queries

    def _engine(self) -> Any:
        from ..store.db import get_engine  # deferred: SQLAlchemy, in worker processes only (senders build this too)

        return get_engine(self.database_url)

    def _run(self, beat: Callable[[], dict[str, Any]]) -> None:
        while not self._stop.is_set():
            try:
                self._queries().write_beat(self._engine(), beat())
            except Exception as exc:  # noqa: BLE001 - a heartbeat must never break the worker
                if not self._failing:
                    logger.warning("[presence] heartbeat of %s not written: %r", self.worker_id, exc)
                self._failing = True
            else:
                self._failing = False
            self._stop.wait(self.interval)
