"""Health probes that answer at once: dependency checks run in the background.

A :class:`HealthMonitor` thread re-checks RabbitMQ, the database, Redis and the
schedules every ``interval`` seconds, each check in its own thread bounded by
``timeout``; a check that hangs is reported as timed out and is not started
again until it returns.  The endpoints only read the last snapshot, so they
answer in well under 50 ms even when a dependency is dead.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from .. import health, topology
from ..clock import utc_now
from ..redaction import redact
from ..scheduling import control
from ..settings import Settings
from ..store.db import get_engine
from ..store.queries import scheduled_runs

logger = logging.getLogger(__name__)


def _check_jobs(settings: Settings) -> dict[str, Any]:
    """Schedules, each with its last success from the history."""
    jobs = control.list_jobs(settings)
    status = None
    try:
        status = control.scheduler_status(settings)
    except Exception as exc:  # noqa: BLE001 - a health report shows the failure
        status = {"error": redact(str(exc))}
    return {"jobs": jobs, "scheduler": status, "last_success": last_successes(settings)}


def last_successes(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per schedule id, from the history: when its runs last succeeded and how its last run ended."""
    found: dict[str, dict[str, Any]] = {}
    for run in scheduled_runs(get_engine(settings.database_url), statuses=("succeeded", "dead", "failed")):
        entry = found.setdefault(run.schedule_id, {"lastSuccess": None, "lastStatus": run.status})
        if run.status == "succeeded" and entry["lastSuccess"] is None and run.finished_at is not None:
            entry["lastSuccess"] = run.finished_at.isoformat()
    return found


class HealthMonitor:
    """Keeps a fresh snapshot of every dependency's health.

    Parameters:
      settings: The settings.
      interval: Seconds between two rounds of checks.
      timeout: Seconds a check may take before it is reported as timed out.
    """

    def __init__(self, settings: Settings, interval: float = 5.0, timeout: float = 1.0) -> None:
        self.settings = settings
        self.interval = interval
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")
        self._pending: dict[str, Future[Any]] = {}
        self._results: dict[str, Any] = {}
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _probes(self) -> dict[str, Any]:
        s = self.settings
        probes: dict[str, Any] = {
            "broker": lambda: health.check_rabbitmq(s, timeout=self.timeout),
            "database": lambda: health.check_database(s),
            "jobs": lambda: _check_jobs(s),
            "queues": lambda: topology.degraded_queues(s, max_age=0, timeout=self.timeout),
        }
        if s.redis_url:
            probes["redis"] = lambda: health.check_redis(s, timeout=self.timeout)
        return probes

    def refresh(self) -> None:
        """Run one round of checks, waiting at most ``timeout`` (plus a little) for them."""
        started: dict[str, Future[Any]] = {}
        for name, probe in self._probes().items():
            pending = self._pending.get(name)
            if pending is not None and not pending.done():
                continue  # still hung from an earlier round: do not pile up threads
            started[name] = self._pending[name] = self._pool.submit(probe)
        deadline = time.monotonic() + self.timeout + 0.2
        results: dict[str, Any] = {}
        for name, future in self._pending.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                results[name] = health.Check(name, False, self.timeout * 1000, "timed out")
            except Exception as exc:  # noqa: BLE001 - a failing check is reported, not raised
                results[name] = health.Check(name, False, 0.0, redact(f"{type(exc).__name__}: {exc}"))
        with self._lock:
            self._results = results
            self._checked_at = time.time()
        self._first.set()

    def start(self) -> None:
        """Check now and then every ``interval`` seconds, from a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the monitor must outlive one bad round
                logger.exception("[web] health check round failed")
            self._stop.wait(self.interval)

    def results(self, wait: float = 1.5) -> tuple[dict[str, Any], float]:
        """The last results and when they were taken; waits (bounded) for the very first round."""
        self.start()
        self._first.wait(wait)
        with self._lock:
            return dict(self._results), self._checked_at


def _check_dict(check: Any) -> dict[str, Any]:
    if check is None:
        return {"ok": True, "detail": "not configured (single-host mode)", "latency_ms": 0.0}
    if isinstance(check, health.Check):
        return {"ok": check.ok, "detail": check.detail, "latency_ms": check.latency_ms}
    return {"ok": False, "detail": "not checked yet", "latency_ms": 0.0}


def _instances(jobs: dict[str, Any] | health.Check | None) -> tuple[int, int]:
    """Scheduler instances heard from in the last day, and those alive now (from their heartbeats)."""
    status = jobs.get("scheduler") if isinstance(jobs, dict) else None
    if not isinstance(status, dict) or "instances" not in status:
        return 0, 0  # the state could not be read: no instance is known to be alive
    return len(status["instances"]), int(status.get("alive") or 0)


def _job_details(jobs: dict[str, Any] | health.Check | None) -> tuple[dict[str, Any], dict[str, int]]:
    """Per schedule: status, health, last success; and the ``schedulers`` counts.

    ``schedulers.total`` and ``.running`` count scheduler *instances* (known in the
    last day, alive now): enabled schedules fire only while one runs.
    ``.errors`` counts failing schedules (the ``details`` entries not healthy).
    """
    total, alive = _instances(jobs)
    if not isinstance(jobs, dict):
        return {}, {"total": total, "running": alive, "errors": 1 if isinstance(jobs, health.Check) else 0}
    history = jobs.get("last_success") or {}
    details: dict[str, Any] = {}
    errors = 0
    for job in jobs.get("jobs") or []:
        runs = history.get(str(job["id"]), {})
        # Failing: the last slot was missed, or the last run died.
        failing = job.get("last_outcome") == "missed" or runs.get("lastStatus") in ("dead", "failed")
        if not job.get("enabled", True):
            status = "disabled"
        elif job.get("paused"):
            status = "paused"
        else:
            status = "failing" if failing else "scheduled"
        errors += failing
        details[str(job["id"])] = {"status": status, "healthy": not failing,
                                   "lastSuccess": runs.get("lastSuccess")}
    return details, {"total": total, "running": alive, "errors": errors}


def _degraded(results: dict[str, Any]) -> dict[str, str]:
    """Queues declared with other arguments than ours, each with what is wrong and the repair command."""
    found = results.get("queues")
    return dict(found) if isinstance(found, dict) else {}


def build_report(results: dict[str, Any], checked_at: float) -> dict[str, Any]:
    """The ``GET /health`` document from one round of results."""
    broker, database = _check_dict(results.get("broker")), _check_dict(results.get("database"))
    redis = _check_dict(results.get("redis")) if "redis" in results else _check_dict(None)
    details, schedulers = _job_details(results.get("jobs"))
    degraded = _degraded(results)
    if not (broker["ok"] and database["ok"]):
        status = "unhealthy"
    elif not redis["ok"] or schedulers["errors"] or not schedulers["running"] or degraded:
        status = "degraded"
    else:
        status = "healthy"
    jobs = results.get("jobs")
    report: dict[str, Any] = {
        "healthy": status == "healthy",
        "status": status,
        "timestamp": utc_now().isoformat(),
        "checkedAt": datetime.fromtimestamp(checked_at, UTC).isoformat() if checked_at else None,
        "schedulers": schedulers,
        "details": details,
        "broker": broker,
        "database": database,
        "redis": redis,
        # checked: false when the last check failed or timed out: then degraded says nothing.
        "queues": {"degraded": degraded, "checked": isinstance(results.get("queues"), dict)},
    }
    if isinstance(jobs, dict) and jobs.get("scheduler") is not None:
        report["scheduler"] = jobs["scheduler"]
    return report


#: The probes answer 503 when a dependency does not (documented in the OpenAPI document).
UNHEALTHY: dict[int | str, dict[str, Any]] = {503: {"description": "A dependency does not answer."}}
router = APIRouter(tags=["health"])


@router.get("/health", summary="Overall health: dependencies and schedules", responses=UNHEALTHY)
def get_health(request: Request) -> JSONResponse:
    """Healthy, degraded (Redis down, no scheduler alive, a schedule failing or a queue degraded) or
    unhealthy (broker or database down: 503)."""
    results, checked_at = request.app.state.health.results()
    report = build_report(results, checked_at)
    return JSONResponse(jsonable_encoder(report), status_code=503 if report["status"] == "unhealthy" else 200)


@router.get("/health/live", summary="Liveness: the process answers")
def get_live() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "alive", "timestamp": utc_now().isoformat()}


@router.get("/health/ready", summary="Readiness: broker and database reachable", responses=UNHEALTHY)
def get_ready(request: Request) -> JSONResponse:
    """200 when the last checks reached RabbitMQ and the database, else 503."""
    results, checked_at = request.app.state.health.results()
    broker, database = _check_dict(results.get("broker")), _check_dict(results.get("database"))
    ready = broker["ok"] and database["ok"]
    # A degraded queue still works (priorities ignored): shown, not a reason to take the pod out.
    body = {"ready": ready, "broker": broker, "database": database, "degradedQueues": _degraded(results),
            "checkedAt": datetime.fromtimestamp(checked_at, UTC).isoformat() if checked_at else None}
    return JSONResponse(body, status_code=200 if ready else 503)
