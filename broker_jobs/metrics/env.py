"""Prometheus multiprocess mode, set up before anything imports ``prometheus_client``.

``prometheus_client`` decides at its first import whether values live in
process memory or in files under ``PROMETHEUS_MULTIPROC_DIR``; Dramatiq's
Prometheus middleware reads ``dramatiq_prom_db``, ``dramatiq_prom_host`` and
``dramatiq_prom_port`` when it is imported.  :func:`configure` sets all of them
to one directory (``METRICS_DIR``, default ``$TMPDIR/broker-jobs-metrics-<port>``)
and must run first: :func:`client` (the only way this package reaches
``prometheus_client``) and the worker middleware call it before their imports.
This module therefore imports nothing of ``prometheus_client`` at module level,
nor any module of the package that does.

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
from types import ModuleType

from ..probes import process_running
from ..settings import Settings, get_settings

logger = logging.getLogger(__name__)

_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")
_configured: tuple[int, Path] | None = None  # (pid, directory): a forked child configures again
_lock = threading.Lock()


def current_settings() -> Settings | None:
    """The process's settings, or None when they do not load (metrics then use their defaults)."""
    try:
        return get_settings()
    except Exception:  # a bad setting is reported by whoever reads it next; metrics fall back
        return None


def metrics_dir(settings: Settings | None = None) -> Path:
    """The multiprocess directory: ``METRICS_DIR``, ``PROMETHEUS_MULTIPROC_DIR`` or a per-port temp dir."""
    settings = settings if settings is not None else current_settings()
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
    return process_running(pid)


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


def configure(settings: Settings | None = None) -> Path:
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
        settings = settings if settings is not None else current_settings()
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


def client() -> ModuleType:
    """``prometheus_client``, imported only once the multiprocess directory is set."""
    configure()
    import prometheus_client  # deferred: it picks its value store at import, after configure()

    return prometheus_client
