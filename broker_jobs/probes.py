"""Liveness and readiness of the worker and scheduler processes, served on ``METRICS_PORT``.

In Dramatiq's multi-process model the HTTP server is a fork of the master (or a
thread of the scheduler), not the process doing the work.  So each worker
process and each scheduler writes what it knows about itself, every
:data:`BEAT` seconds, into a small JSON file of the host's metrics directory
(``health_<role>_<pid>.json``), and whichever process serves ``METRICS_PORT``
answers ``/health/live`` and ``/health/ready`` from the files of the live
processes of the host:

* a file whose process is gone is deleted and ignored;
* a file not rewritten for :data:`STALE_AFTER` seconds means its process is
  wedged: not live (the orchestrator restarts it);
* ready when every reporting process says it is ready, and at least one
  process of the server's own role has reported (a worker master whose worker
  processes never booted is not ready).

What each role reports is decided where the facts live:
:mod:`broker_jobs.middleware.heartbeat` (worker threads alive, consumers
connected) and :meth:`broker_jobs.scheduling.scheduler.Scheduler.health`
(lease loop turning, lease and store read recently, RabbitMQ reachable when
leading).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds between two writes of a process's state.
BEAT = 2.0
#: A state older than this (its process alive) means the process is wedged.
STALE_AFTER = 30.0

_FILE = re.compile(r"^health_([a-z]+)_(\d+)\.json$")


def state_path(directory: Path, role: str, pid: int | None = None) -> Path:
    """Where process ``pid`` (default: this one) of ``role`` writes its state."""
    return directory / f"health_{role}_{pid or os.getpid()}.json"


def write_state(directory: Path, role: str, state: dict[str, Any]) -> None:
    """Replace this process's state file at once (readers never see half a file).

    Parameters:
      directory: The host's metrics directory.
      role: ``worker`` or ``scheduler``.
      state: At least ``live`` and ``ready`` (booleans) and ``problems`` (strings).
    """
    path = state_path(directory, role)
    body = {**state, "role": role, "pid": os.getpid(), "at": time.time()}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, default=str))
    os.replace(tmp, path)


def remove_state(directory: Path, role: str) -> None:
    """Delete this process's state file (it stops: it no longer counts)."""
    try:
        state_path(directory, role).unlink()
    except FileNotFoundError:
        pass


def process_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_states(directory: Path) -> list[dict[str, Any]]:
    """The states of the host's live processes; files of dead processes are deleted."""
    states = []
    for path in sorted(directory.glob("health_*.json")):
        match = _FILE.match(path.name)
        if match is None:
            continue
        if not process_running(int(match.group(2))):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            continue
        try:
            states.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # removed or replaced while read: the next beat rewrites it
    return states


def evaluate(states: list[dict[str, Any]], role: str, now: float | None = None) -> dict[str, Any]:
    """Judge the host from its processes' states (a pure function).

    Parameters:
      states: What :func:`read_states` returned.
      role: The serving process's role: at least one process of it must have reported to be ready.
      now: The time (default: now).

    Returns:
      ``{"live": bool, "ready": bool, "problems": [...], "processes": [...]}``.
    """
    now = time.time() if now is None else now
    problems: list[str] = []
    processes = []
    live = ready = True
    for state in states:
        age = max(0.0, now - float(state.get("at", 0)))
        name = f"{state.get('role')} {state.get('pid')}"
        entry = {**state, "age_seconds": round(age, 1)}
        if age > STALE_AFTER:
            entry["live"] = entry["ready"] = False
            entry["problems"] = [f"no state written for {age:.0f} s (wedged?)"]
        processes.append(entry)
        live = live and bool(entry.get("live"))
        ready = ready and bool(entry.get("ready"))
        problems += [f"{name}: {p}" for p in entry.get("problems") or []]
    if not any(s.get("role") == role for s in states):
        ready = False
        problems.append(f"no {role} process has reported yet")
    return {"live": live, "ready": ready and live, "problems": problems, "processes": processes}


def respond(path: str, directory: Path, role: str) -> tuple[int, bytes, str] | None:
    """The answer to ``GET path`` on the metrics port, None when the path is not a probe.

    ``/health/live`` and ``/health/ready``: 200 or 503 with a JSON body saying why.
    """
    route = path.split("?", 1)[0].rstrip("/")
    if route not in ("/health/live", "/health/ready"):
        return None
    verdict = evaluate(read_states(directory), role)
    ok = verdict["live"] if route == "/health/live" else verdict["ready"]
    body = {"status": ("live" if route == "/health/live" else "ready") if ok else "failing",
            "served_by": {"role": role, "pid": os.getpid()}, **verdict}
    return (200 if ok else 503), json.dumps(body, default=str).encode(), "application/json"


class Beat:
    """A daemon thread writing ``report()`` as this process's state every :data:`BEAT` seconds.

    Parameters:
      directory: The host's metrics directory.
      role: ``worker`` or ``scheduler``.
      report: Returns the state (``live``, ``ready``, ``problems`` and any detail).
      on_beat: Called at each beat first (the process's CPU and memory metrics); must not raise.
    """

    def __init__(self, directory: Path, role: str, report: Callable[[], dict[str, Any]],
                 on_beat: Callable[[], None] | None = None) -> None:
        self.directory, self.role, self.report, self.on_beat = directory, role, report, on_beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{role}-health", daemon=True)
        self._failing = False

    def start(self) -> Beat:
        """Write now, then every :data:`BEAT` seconds."""
        self._thread.start()
        return self

    def beat(self) -> None:
        """Write the state once, after ``on_beat`` (a failure is logged, never raised)."""
        if self.on_beat is not None:
            self.on_beat()
        try:
            write_state(self.directory, self.role, self.report())
        except Exception as exc:  # noqa: BLE001 - a probe file must never break the process
            if not self._failing:  # once per outage, not every beat
                logger.warning("[health] state of %s %d not written (its probes will fail): %r", self.role,
                               os.getpid(), exc)
            self._failing = True
        else:
            self._failing = False

    def stop(self) -> None:
        """Stop writing and delete the file: a stopped process no longer counts."""
        self._stop.set()
        remove_state(self.directory, self.role)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(BEAT)
        remove_state(self.directory, self.role)
