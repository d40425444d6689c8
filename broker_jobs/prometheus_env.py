"""Prometheus multiprocess mode, set up before anything imports ``prometheus_client``.

``prometheus_client`` decides at its first import whether values live in
process memory or in files under ``PROMETHEUS_MULTIPROC_DIR``; Dramatiq's
Prometheus middleware reads ``dramatiq_prom_db``, ``dramatiq_prom_host`` and
``dramatiq_prom_port`` when it is imported.  :func:`configure` sets all of them
to one directory (``METRICS_DIR``, default ``$TMPDIR/broker-jobs-metrics-<port>``)
and must run first: :mod:`broker_jobs.metrics` and the broker call it before
their imports.

Stale files are removed at start: every file of a process that is no longer
alive (and any left under this process's own id by a dead predecessor).  Files
of live processes are kept, so a worker process never wipes a sibling's
counters, nor a worker master a running scheduler's gauges.  One directory per
host (or container): process ids mean nothing across pid namespaces.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")
_configured: tuple[int, Path] | None = None  # (pid, directory): a forked child configures again
_lock = threading.Lock()


def _settings() -> Any:
    try:
        from .settings import get_settings

        return get_settings()
    except Exception:  # a bad setting is reported by whoever reads it next; metrics fall back
        return None


def metrics_dir(settings: Any = None) -> Path:
    """The multiprocess directory: ``METRICS_DIR``, ``PROMETHEUS_MULTIPROC_DIR`` or a per-port temp dir."""
    settings = settings if settings is not None else _settings()
    if settings is not None and settings.metrics_dir:
        return Path(settings.metrics_dir)
    inherited = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if inherited:
        return Path(inherited)
    port = settings.metrics_port if settings is not None else 9191
    return Path(tempfile.gettempdir()) / f"broker-jobs-metrics-{port}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a file under our id was left by a dead process before us
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(directory: Path) -> int:
    """Delete the metric files of processes that are gone; returns how many."""
    removed = 0
    for path in directory.glob("*.db"):
        match = _FILE.match(path.name)
        if match and not _alive(int(match.group(1))):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def configure(settings: Any = None) -> Path:
    """Point Prometheus and Dramatiq at the multiprocess directory (once per process).

    Parameters:
      settings: The settings (default: the process's).

    Returns:
      The directory.
    """
    global _configured
    with _lock:
        if _configured is not None and _configured[0] == os.getpid():
            return _configured[1]
        settings = settings if settings is not None else _settings()
        directory = metrics_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        os.environ["prometheus_multiproc_dir"] = str(directory)  # noqa: SIM112 - the old name, still read
        os.environ["dramatiq_prom_db"] = str(directory)  # noqa: SIM112 - Dramatiq's lower-case name
        if settings is not None:
            os.environ.setdefault("dramatiq_prom_host", settings.metrics_host)
            os.environ.setdefault("dramatiq_prom_port", str(settings.metrics_port))
        remove_stale(directory)
        _configured = (os.getpid(), directory)
        return directory


def serve_worker_metrics() -> int:
    """Dramatiq fork function: serve the host's metrics on ``METRICS_HOST:METRICS_PORT``.

    Runs in a process forked by the ``dramatiq`` master, which never imported our
    code, so the directory, host and port come from our settings, not from
    variables set in the workers.
    """
    from http.server import ThreadingHTTPServer

    settings = _settings()
    configure(settings)
    host = settings.metrics_host if settings is not None else "127.0.0.1"
    port = settings.metrics_port if settings is not None else 9191
    try:
        server = ThreadingHTTPServer((host, port), _handler())
    except OSError as exc:  # the workers run on
        logger.warning("[metrics] %s:%d is taken (%s): if it is this host's scheduler, it serves these "
                       "metrics too (same METRICS_DIR); otherwise set METRICS_PORT", host, port,
                       exc.strerror or exc)
        return 1
    logger.info("[metrics] serving worker metrics on http://%s:%d/metrics", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def start_exporter(host: str, port: int) -> Any:
    """Serve this host's metrics from a daemon thread, unless something already does.

    The scheduler calls it: in its own container it exports its metrics itself;
    beside a worker (same host, same ``METRICS_DIR``) the port is taken and the
    worker master's exporter already serves the scheduler's files too.

    Returns:
      The HTTP server (``shutdown()`` stops it), or ``None`` when the port was taken.
    """
    from http.server import ThreadingHTTPServer

    directory = configure()
    try:
        server = ThreadingHTTPServer((host, port), _handler())
    except OSError as exc:
        logger.info("[metrics] %s:%d is taken (%s): this host's exporter serves %s", host, port,
                    exc.strerror or exc, directory)
        return None
    threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True).start()
    logger.info("[metrics] serving this host's metrics on http://%s:%d/metrics", host, port)
    return server


def _handler() -> Any:
    from http.server import BaseHTTPRequestHandler

    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            from .metrics import render

            body, content_type = render()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            logger.debug(fmt, *args)

    return MetricsHandler
