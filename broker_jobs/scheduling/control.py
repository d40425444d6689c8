"""Operator controls over schedules, shared by the CLI and the HTTP API.

Everything here reads and writes the shared database, so every scheduler
instance sees a pause, a note or a runtime job at its next refresh (5 s).
What publishes runs (``run_now``, ``backfill``) is in :mod:`.firing`: listing,
pausing or reading a job loads no broker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..clock import as_utc, utc_now
from ..errors import BrokerJobsError, ConfigError, NotFoundError
from ..settings import Settings
from ..store import queries
from ..store.scheduler_state import SchedulerStore, open_scheduler_store
from . import groups
from .config import JobDef, load_config, parse_job
from .lease import build_lease, lease_name
from .lease_keeper import REFRESH
from .triggers import describe, fire_times, next_fire

if TYPE_CHECKING:
    from sqlalchemy import Row

def _store(settings: Settings) -> SchedulerStore:
    return open_scheduler_store(settings.database_url)


def _config_jobs(settings: Settings) -> dict[str, JobDef]:
    return {job.id: job for job in load_config(settings.jobs_config, settings).jobs}


def all_jobs(settings: Settings, store: SchedulerStore | None = None) -> dict[str, JobDef]:
    """The jobs file's jobs, then the runtime ones (a runtime job that no longer validates is left out)."""
    store = store or _store(settings)
    jobs = _config_jobs(settings)
    for job_id, spec in store.runtime_specs().items():
        if job_id not in jobs:
            try:
                jobs[job_id] = parse_job(spec, settings, path=(f"runtime job {job_id}",), origin="runtime")
            except BrokerJobsError:
                continue
    return jobs


def get_job(settings: Settings, job_id: str, store: SchedulerStore | None = None) -> JobDef:
    """One job by id.

    Raises:
      NotFoundError: naming the known ids.
    """
    jobs = all_jobs(settings, store)
    if job_id not in jobs:
        raise NotFoundError(f"unknown job {job_id!r} (known: {', '.join(sorted(jobs)) or 'none'})")
    return jobs[job_id]


def _row(job: JobDef, state: Row[Any] | None, control: Row[Any] | None, now: datetime) -> dict[str, Any]:
    paused = bool(control is not None and control.paused)
    return {
        "id": job.id, "actor": job.actor, "trigger": describe(job.trigger), "priority": job.priority.label,
        "queue": job.queue, "enabled": job.enabled, "paused": paused,
        "note": control.note if control is not None else None,
        "next_run": next_fire(job.trigger, now) if job.enabled else None,
        "last_run": as_utc(state.last_fired_at) if state is not None else None,
        "last_outcome": state.last_outcome if state is not None else None,
        "origin": job.origin,
    }


def list_jobs(settings: Settings) -> list[dict[str, Any]]:
    """Every job: id, actor, trigger in words, priority, queue, enabled, paused, note, next and last run."""
    store = _store(settings)
    states, controls, now = store.states(), store.controls(), utc_now()
    return [_row(job, states.get(i), controls.get(i), now) for i, job in sorted(all_jobs(settings, store).items())]


def show_job(settings: Settings, job_id: str, audit: int = 20) -> dict[str, Any]:
    """One job in full, with its runs in flight and its recent slot outcomes."""
    store = _store(settings)
    job = get_job(settings, job_id, store)
    row = _row(job, store.states().get(job_id), store.controls().get(job_id), utc_now())
    row.update(
        description=job.description, args=list(job.args), kwargs=job.kwargs, timezone=job.timezone,
        jitter=job.jitter, misfire=job.misfire, misfire_grace=job.misfire_grace, overlap=job.overlap, group=job.group,
        in_flight=[{"fire_id": f.fire_id, "state": "queued" if f.queued else "running"}
                   for f in store.in_flight([job_id]).get(job_id, [])],
        audit=store.audit(job_id, audit),
    )
    return row


def preview(settings: Settings, job_id: str, count: int = 10, start: datetime | None = None) -> list[datetime]:
    """The next ``count`` fire times after ``start`` (default now), in the job's time zone."""
    job = get_job(settings, job_id)
    begin = start or utc_now()
    if begin.tzinfo is None:
        begin = begin.replace(tzinfo=ZoneInfo(job.timezone))
    zone = ZoneInfo(job.timezone)
    slots = fire_times(job.trigger, begin, datetime.max.replace(tzinfo=zone) - timedelta(days=2), limit=count)
    return [slot.astimezone(zone) for slot in slots]


def pause(settings: Settings, job_id: str, note: str | None = None) -> dict[str, Any]:
    """Pause a job; its slots are recorded ``paused`` until :func:`resume`."""
    store = _store(settings)
    get_job(settings, job_id, store)
    store.set_control(job_id, paused=True, note=note)
    return {"id": job_id, "paused": True, "note": note}


def resume(settings: Settings, job_id: str) -> dict[str, Any]:
    """Resume a paused job from its next slot (paused slots are not caught up)."""
    store = _store(settings)
    get_job(settings, job_id, store)
    store.set_control(job_id, paused=False, note=None)
    return {"id": job_id, "paused": False}


def add_runtime_job(settings: Settings, spec: dict[str, Any]) -> dict[str, Any]:
    """Add (or replace) a runtime job, validated like a jobs-file entry; every instance picks it up."""
    store = _store(settings)
    config = _config_jobs(settings)
    job = parse_job(spec, settings, path=("job",), origin="runtime")
    if job.id in config:
        raise ConfigError(f"job.id: {job.id!r} is defined in {settings.jobs_config}; edit it there")
    store.add_runtime(job.id, dict(spec))
    return _row(job, store.states().get(job.id), store.controls().get(job.id), utc_now())


def remove_runtime_job(settings: Settings, job_id: str) -> dict[str, Any]:
    """Remove a runtime job (jobs of the jobs file are removed by editing it)."""
    store = _store(settings)
    if job_id in _config_jobs(settings):
        raise ConfigError(f"{job_id!r} is defined in {settings.jobs_config}; remove it there")
    if not store.remove_runtime(job_id):
        raise NotFoundError(f"no runtime job {job_id!r}")
    return {"id": job_id, "removed": True}


def scheduler_status(settings: Settings) -> dict[str, Any]:
    """The lease holder, its fencing token, the instances' heartbeats and errors, whether it is paused whole."""
    store = _store(settings)
    holder = build_lease(settings, store.engine).holder()
    now = utc_now()
    instances = store.instances()
    for row in instances:
        row["alive"] = (now - row["heartbeat_at"]).total_seconds() <= 3 * REFRESH
    whole = store.controls().get(groups.control_key(None))
    return {
        "paused": bool(whole is not None and whole.paused),
        "paused_note": whole.note if whole is not None and whole.paused else None,
        "leader": holder.owner if holder else None,
        "fencing_token": holder.token if holder else None,
        "lease_expires_in": round(holder.expires_in, 3) if holder else None,
        "fence": store.fence(),
        "instances": instances,
        "alive": sum(1 for row in instances if row["alive"]),
        "errors": sum(row["errors"] or 0 for row in instances if row["alive"]),
        "last_errors": [row["last_error"] for row in instances if row["alive"] and row["last_error"]],
    }


def known_groups(settings: Settings, store: SchedulerStore | None = None) -> list[str]:
    """The groups of the jobs (file and runtime), sorted; ``default`` for jobs that name none."""
    return sorted({job.group for job in all_jobs(settings, store).values()})


def check_group(settings: Settings, group: str, store: SchedulerStore | None = None) -> None:
    """Refuse a group no job is in (a typo would run a scheduler of nothing).

    Raises:
      NotFoundError: naming the known groups.
    """
    known = known_groups(settings, store)
    if group not in known:
        raise NotFoundError(f"--group: no job is in group {group!r} (groups: {', '.join(known) or 'none'})")


def pause_scheduler(settings: Settings, group: str | None, note: str | None = None) -> dict[str, Any]:
    """Pause the whole scheduler (``group`` None: every job) or one group's jobs, on every instance.

    Their slots are recorded ``paused`` until :func:`resume_scheduler`; a job's own pause stays as it is.
    """
    store = _store(settings)
    if group is not None:
        check_group(settings, group, store)
    store.set_control(groups.control_key(group), paused=True, note=note)
    return {"scheduler": group or groups.EVERYTHING, "paused": True, "note": note}


def resume_scheduler(settings: Settings, group: str | None) -> dict[str, Any]:
    """Resume the whole scheduler or one group from the next slot (paused slots are not caught up)."""
    store = _store(settings)
    if group is not None:
        check_group(settings, group, store)
    store.set_control(groups.control_key(group), paused=False, note=None)
    return {"scheduler": group or groups.EVERYTHING, "paused": False}


def schedulers(settings: Settings) -> dict[str, Any]:
    """Every group's scheduler, in seed 001's health shape.

    ``{"healthy", "status", "timestamp", "schedulers": {"total", "running", "paused", "errors"}, "details":
    {GROUP: {"status", "healthy", "lastSuccess", "leader", "lease", "instances", "jobs", "paused", "note"}}}``.
    A group is ``RUNNING`` when its own scheduler (``--group``) or the scheduler of every job leads, ``PAUSED``
    when it (or everything) is paused, ``STOPPED`` when no instance leads it, ``ERROR`` when the instance
    leading it has not written a heartbeat for three refreshes (its loop is stuck).
    """
    store = _store(settings)
    jobs = all_jobs(settings, store)
    states, controls, instances, now = store.states(), store.controls(), store.instances(), utc_now()
    heartbeats = {row["instance_id"]: row for row in instances}
    main = build_lease(settings, store.engine).holder()
    everything = controls.get(groups.control_key(None))
    details: dict[str, Any] = {}
    for group in sorted({job.group for job in jobs.values()}):
        members = [job for job in jobs.values() if job.group == group]
        own = build_lease(settings, store.engine, group).holder()
        holder = own or main
        pause = controls.get(groups.control_key(group))
        paused_by = next((c for c in (everything, pause) if c is not None and c.paused), None)
        beat = heartbeats.get(holder.owner) if holder else None
        stuck = beat is not None and (now - beat["heartbeat_at"]).total_seconds() > 3 * REFRESH
        status = ("ERROR" if stuck else "PAUSED" if paused_by is not None else
                  "RUNNING" if holder is not None else "STOPPED")
        fired = [when for j in members if j.id in states
                 and (when := as_utc(states[j.id].last_fired_at)) is not None]
        details[group] = {
            "status": status, "healthy": status in ("RUNNING", "PAUSED"),
            "lastSuccess": max(fired).isoformat() if fired else None,
            "leader": holder.owner if holder else None,
            "lease": lease_name(group) if own else lease_name(None),
            "instances": sum(1 for row in instances if row["instance_id"].startswith(f"{group}@")
                             and (now - row["heartbeat_at"]).total_seconds() <= 3 * REFRESH),
            "jobs": len(members), "paused": paused_by is not None,
            "note": paused_by.note if paused_by is not None else None,
        }
    counts = {"total": len(details), "running": sum(d["status"] == "RUNNING" for d in details.values()),
              "paused": sum(d["status"] == "PAUSED" for d in details.values()),
              "errors": sum(d["status"] == "ERROR" for d in details.values())}
    healthy = all(d["healthy"] for d in details.values())
    return {"healthy": healthy, "status": "healthy" if healthy else "unhealthy", "timestamp": now.isoformat(),
            "paused": bool(everything is not None and everything.paused), "schedulers": counts, "details": details}


def job_stats(settings: Settings) -> dict[str, Any]:
    """Per job and in total: runs executed (succeeded), failed (failed or dead), slots missed, the last error.

    Every known job is listed (zeros when it never ran); schedules no longer defined keep their history's counts.
    """
    store = _store(settings)
    counted = queries.job_stats(store.engine)
    empty: dict[str, Any] = {"executed": 0, "failed": 0, "missed": 0, "last_error": None}
    jobs = {job_id: dict(counted.get(job_id, empty)) for job_id in all_jobs(settings, store)}
    jobs.update({job_id: row for job_id, row in counted.items() if job_id not in jobs})
    errors = [row["last_error"] for row in jobs.values() if row["last_error"] is not None]
    latest = max(errors, key=lambda e: e["at"] or datetime.min.replace(tzinfo=UTC), default=None)
    total = {"jobs_executed": sum(r["executed"] for r in jobs.values()),
             "jobs_failed": sum(r["failed"] for r in jobs.values()),
             "jobs_missed": sum(r["missed"] for r in jobs.values()), "last_error": latest}
    if latest is not None:
        total["last_error"] = {**latest, "job_id": next(i for i, r in jobs.items() if r["last_error"] is latest)}
    return {"jobs": dict(sorted(jobs.items())), "total": total}
