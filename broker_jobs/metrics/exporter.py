"""The host's metrics and probes over HTTP on ``METRICS_PORT``, with port takeover.

One process of the host serves the multiprocess directory: the worker master's
fork (:func:`serve_worker_metrics`) or a scheduler (:class:`Exporter`),
whichever binds first.  It answers ``/metrics``, the probes ``/health/live`` and
``/health/ready`` (:mod:`broker_jobs.probes`) and 404 for anything else.  The
others keep trying to bind every :data:`TAKEOVER_EVERY` seconds, so the port
outlives the process holding it.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..probes import respond
from .definitions import render
from .env import configure, current_settings

logger = logging.getLogger(__name__)


#: Seconds between two attempts to take the metrics port over from a process that holds it.
TAKEOVER_EVERY = 2.0


def _bind(host: str, port: int, role: str) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), _handler(role))


def serve_worker_metrics() -> int:
    """Dramatiq fork function: serve the host's metrics and probes on ``METRICS_HOST:METRICS_PORT``.

    Runs in a process forked by the ``dramatiq`` master, which never imported our
    code, so the directory, host and port come from our settings, not from
    variables set in the workers.  While another process of the host (a
    scheduler) holds the port, it tries again every :data:`TAKEOVER_EVERY`
    seconds: when that process stops, this one takes the port over.  It runs
    until the master stops it.
    """
    settings = current_settings()
    configure(settings)
    host = settings.metrics_host if settings is not None else "127.0.0.1"
    port = settings.metrics_port if settings is not None else 9191
    warned = False
    while True:
        try:
            server = _bind(host, port, "worker")
            break
        except OSError as exc:
            if not warned:
                logger.warning("[metrics] %s:%d is taken (%s): if it is this host's scheduler, it serves these "
                               "metrics too (same METRICS_DIR); trying again every %g s to take over when it "
                               "stops", host, port, exc.strerror or exc, TAKEOVER_EVERY)
                warned = True
            time.sleep(TAKEOVER_EVERY)
    logger.info("[metrics] serving worker metrics and probes on http://%s:%d/metrics", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


class Exporter:
    """Serves this host's metrics and probes from daemon threads, as soon as the port is free.

    The scheduler uses it: in its own container it exports its metrics itself;
    beside a worker (same host, same ``METRICS_DIR``) the port is taken and the
    worker master's exporter already serves the scheduler's files too.  A thread
    tries to bind every :data:`TAKEOVER_EVERY` seconds until it succeeds, so when
    the holder stops, this process takes the port over.

    Parameters:
      host: ``METRICS_HOST``.
      port: ``METRICS_PORT``.
      role: The serving process's role for the probes (``scheduler``).
    """

    def __init__(self, host: str, port: int, role: str = "scheduler") -> None:
        self.host, self.port, self.role = host, port, role
        self.server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-exporter", daemon=True)

    def start(self) -> Exporter:
        """Bind now if the port is free, else keep trying in the background."""
        directory = configure()
        if not self._try_bind(first=True, directory=directory):
            self._thread.start()
        return self

    def _try_bind(self, first: bool = False, directory: Path | None = None) -> bool:
        try:
            server = _bind(self.host, self.port, self.role)
        except OSError as exc:
            if first:
                logger.info("[metrics] %s:%d is taken (%s): this host's exporter serves %s; trying again every "
                            "%g s to take over when it stops", self.host, self.port, exc.strerror or exc,
                            directory, TAKEOVER_EVERY)
            return False
        self.server = server
        threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
        logger.info("[metrics] serving this host's metrics and probes on http://%s:%d/metrics", self.host,
                    self.port)
        return True

    def _run(self) -> None:
        while not self._stop.wait(TAKEOVER_EVERY):
            if self._try_bind():
                return

    def shutdown(self) -> None:
        """Stop serving (or trying to)."""
        self._stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def start_exporter(host: str, port: int, role: str = "scheduler") -> Exporter:
    """Serve this host's metrics and probes now or as soon as the port is free (see :class:`Exporter`)."""
    return Exporter(host, port, role).start()


def _handler(role: str) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = self.path.split("?", 1)[0].rstrip("/")
            if route == "/metrics":
                body, content_type = render()
                status = 200
            else:
                answer = respond(self.path, configure(), role)
                if answer is None:
                    status, body, content_type = 404, b"not found: /metrics, /health/live, /health/ready\n", \
                        "text/plain; charset=utf-8"
                else:
                    status, body, content_type = answer
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            logger.debug(fmt, *args)

    return MetricsHandler
