"""The reads the API, the dashboard, the metrics collector and the CLI make of the history and the archive.

All their SQL lives here; every time they return is aware UTC (:func:`broker_jobs.clock.as_utc`
repairs SQLite's naive values, once, here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, Row, delete, func, select, update

from ..clock import as_utc
from .db import upsert_insert
from .models import dead_letters, job_runs, run_attempts, slot_audit, worker_beats

#: How many recent scheduled runs :func:`latest_scheduled_runs` reads at most.
SCHEDULED_RUNS_SCAN = 5000


def run_counts(engine: Engine, by: Literal["status", "queue"], status: str | None = None) -> dict[str, int]:
    """Runs kept in the history, counted by status or by queue (``status`` keeps only runs in that status)."""
    column = job_runs.c.status if by == "status" else job_runs.c.queue
    stmt = select(column, func.count()).group_by(column)
    if status is not None:
        stmt = stmt.where(job_runs.c.status == status)
    with engine.connect() as conn:
        return {str(key): int(count) for key, count in conn.execute(stmt)}


def queue_run_counts(engine: Engine, queue: str) -> dict[str, int]:
    """Runs of one queue kept in the history (after retention), by status."""
    stmt = (select(job_runs.c.status, func.count()).where(job_runs.c.queue == queue)
            .group_by(job_runs.c.status))
    with engine.connect() as conn:
        return {str(status): int(count) for status, count in conn.execute(stmt)}


def latest_run(engine: Engine, actor: str) -> dict[str, Any] | None:
    """The newest run of ``actor``: status, times (aware UTC), message id, error; None if it never ran."""
    stmt = (select(job_runs.c.message_id, job_runs.c.status, job_runs.c.started_at, job_runs.c.finished_at,
                   job_runs.c.error).where(job_runs.c.actor == actor).order_by(job_runs.c.id.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    return {"message_id": row.message_id, "status": row.status, "started_at": as_utc(row.started_at),
            "finished_at": as_utc(row.finished_at), "error": row.error}


def finished_since(engine: Engine, since: datetime, limit: int = 100_000) -> list[tuple[str, datetime]]:
    """``(queue, finished_at)`` of the runs finished at or after ``since``."""
    stmt = select(job_runs.c.queue, job_runs.c.finished_at).where(job_runs.c.finished_at >= since).limit(limit)
    with engine.connect() as conn:
        return [(queue, when) for queue, finished in conn.execute(stmt)
                if (when := as_utc(finished)) is not None]


@dataclass(frozen=True)
class ScheduledRun:
    """One run of a schedule, as the history keeps it."""

    schedule_id: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    message_id: str


def scheduled_runs(engine: Engine, statuses: Iterable[str] | None = None,
                   limit: int = SCHEDULED_RUNS_SCAN) -> list[ScheduledRun]:
    """The newest runs the scheduler fired (a fire id), newest first, optionally only in ``statuses``."""
    c = job_runs.c
    stmt = (select(c.fire_id, c.status, c.started_at, c.finished_at, c.duration_ms, c.message_id)
            .where(c.fire_id.is_not(None)))
    if statuses is not None:
        stmt = stmt.where(job_runs.c.status.in_(tuple(statuses)))
    stmt = stmt.order_by(job_runs.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [ScheduledRun(str(fire_id).split("@", 1)[0], status, as_utc(started), as_utc(finished),
                             duration, message_id)
                for fire_id, status, started, finished, duration, message_id in conn.execute(stmt)]


def recent_dead(engine: Engine, limit: int = 25) -> list[dict[str, Any]]:
    """The newest letters archived as dead, oldest first."""
    stmt = (select(dead_letters).where(dead_letters.c.state == "dead")
            .order_by(dead_letters.c.dead_at.desc(), dead_letters.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [{"id": r["message_id"], "queue": r["queue"], "actor": r["actor"], "reason": r["reason"],
             "attempts": r["attempts"], "dead_at": as_utc(r["dead_at"])} for r in reversed(rows)]


def oldest_dead(engine: Engine) -> dict[str, datetime]:
    """When the oldest letter still archived as dead died, by queue."""
    stmt = (select(dead_letters.c.queue, func.min(dead_letters.c.dead_at))
            .where(dead_letters.c.state == "dead").group_by(dead_letters.c.queue))
    with engine.connect() as conn:
        return {queue: when for queue, oldest in conn.execute(stmt) if (when := as_utc(oldest)) is not None}


def archived_letters(engine: Engine, message_ids: Iterable[str]) -> dict[str, Row[Any]]:
    """The archive's record of each of ``message_ids`` that has one (the last, for a message that died twice)."""
    ids = list(message_ids)
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(dead_letters).where(dead_letters.c.message_id.in_(ids))
                            .order_by(dead_letters.c.id))
        return {row.message_id: row for row in rows}


def mark_archived(engine: Engine, message_ids: list[str], state: str) -> None:
    """Move the letters of ``message_ids`` still archived as dead to ``state`` (replayed, purged)."""
    if not message_ids:
        return
    with engine.begin() as conn:
        conn.execute(update(dead_letters)
                     .where(dead_letters.c.message_id.in_(message_ids), dead_letters.c.state == "dead")
                     .values(state=state))


def query_runs(
    engine: Engine,
    *,
    actor: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[Row[Any]]:
    """The most recent runs, newest first, optionally filtered (the rows as stored: ``broker-jobs history``
    reads them without loading the writer's machinery)."""
    stmt = select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(job_runs.c.actor == actor)
    if status:
        stmt = stmt.where(job_runs.c.status == status)
    with engine.connect() as conn:
        return list(conn.execute(stmt))


def run_of(engine: Engine, message_id: str) -> Row[Any] | None:
    """The history row of ``message_id`` (None until its worker's history writer has recorded it)."""
    with engine.connect() as conn:
        return conn.execute(select(job_runs).where(job_runs.c.message_id == message_id)).first()


#: The time columns of a run, read back as aware UTC.
_RUN_TIMES = ("enqueued_at", "started_at", "finished_at")


def _run(row: Row[Any]) -> dict[str, Any]:
    run = {name: value for name, value in row._mapping.items() if name != "seq"}
    for name in _RUN_TIMES:
        run[name] = as_utc(run[name])
    return run


def _like(text: str) -> str:
    """``text`` as a ``LIKE`` pattern matching it anywhere, its wildcards escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class RunFilter:
    """What a history search keeps: each field given narrows it (all of them: AND).

    Attributes:
      actor, queue, status: Equal to.
      since, until: Finished in ``[since, until)``.
      error: The error contains this text (any case).
    """

    actor: str | None = None
    queue: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    error: str | None = None


def search_runs(engine: Engine, where: RunFilter, *, before: int | None = None,
                limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the history, newest first (by id), and the cursor of the next page.

    Keyset paging: the next page is the runs with an id below the last one's (``before``), so page
    N costs what page 1 does, whatever rows arrive meanwhile; every filter is served by an index
    ending in ``id`` (revision ``0003_console``).

    Returns:
      The runs, and the ``before`` of the next page (None on the last page).
    """
    c = job_runs.c
    stmt = select(job_runs).order_by(c.id.desc()).limit(limit + 1)
    if where.actor:
        stmt = stmt.where(c.actor == where.actor)
    if where.queue:
        stmt = stmt.where(c.queue == where.queue)
    if where.status:
        stmt = stmt.where(c.status == where.status)
    if where.since is not None:
        stmt = stmt.where(c.finished_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(c.finished_at < where.until)
    if where.error:
        stmt = stmt.where(c.error.is_not(None), c.error.ilike(_like(where.error), escape="\\"))
    if before is not None:
        stmt = stmt.where(c.id < before)
    with engine.connect() as conn:
        rows = list(conn.execute(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return [_run(r) for r in rows], (int(rows[-1].id) if more and rows else None)


def _attempts(conn: Any, message_id: str) -> list[dict[str, Any]]:
    stmt = select(run_attempts).where(run_attempts.c.message_id == message_id).order_by(run_attempts.c.id)
    return [{"attempt": a.attempt, "status": a.status, "error": a.error, "traceback": a.traceback,
             "worker": a.worker, "started_at": as_utc(a.started_at), "finished_at": as_utc(a.finished_at)}
            for a in conn.execute(stmt)]


def _letters(conn: Any, message_id: str) -> list[dict[str, Any]]:
    stmt = select(dead_letters).where(dead_letters.c.message_id == message_id).order_by(dead_letters.c.id)
    return [{"id": d.message_id, "queue": d.queue, "actor": d.actor, "reason": d.reason,
             "traceback": d.traceback, "attempts": d.attempts, "dead_at": as_utc(d.dead_at), "state": d.state,
             "body": d.body} for d in conn.execute(stmt)]


@dataclass(frozen=True)
class RunRecord:
    """Everything the store holds about one message: its run, its failed attempts, its dead-letter archive."""

    run: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    letters: list[dict[str, Any]]


def run_record(engine: Engine, message_id: str) -> RunRecord:
    """The run of ``message_id`` (None if the history has none), its failed attempts and archived letters."""
    with engine.connect() as conn:
        row = conn.execute(select(job_runs).where(job_runs.c.message_id == message_id)).first()
        return RunRecord(_run(row) if row is not None else None, _attempts(conn, message_id),
                         _letters(conn, message_id))


def dead_groups(engine: Engine, limit: int = 500) -> list[dict[str, Any]]:
    """The letters archived as dead, newest first, at most ``limit`` (the console groups them by reason)."""
    stmt = (select(dead_letters).where(dead_letters.c.state == "dead")
            .order_by(dead_letters.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [{"id": r["message_id"], "queue": r["queue"], "actor": r["actor"], "reason": r["reason"],
             "attempts": r["attempts"], "dead_at": as_utc(r["dead_at"])} for r in rows]


def write_beat(engine: Engine, beat: dict[str, Any]) -> None:
    """Insert or refresh a worker process's heartbeat (``beat`` holds every ``worker_beats`` column)."""
    stmt = upsert_insert(engine, worker_beats).values(**beat)
    stmt = stmt.on_conflict_do_update(index_elements=["worker_id"],
                                      set_={k: stmt.excluded[k] for k in beat if k != "worker_id"})
    with engine.begin() as conn:
        conn.execute(stmt)


def drop_beat(engine: Engine, worker_id: str) -> None:
    """Forget a worker process that stopped cleanly."""
    with engine.begin() as conn:
        conn.execute(delete(worker_beats).where(worker_beats.c.worker_id == worker_id))


def worker_heartbeats(engine: Engine) -> list[dict[str, Any]]:
    """Every worker process's last heartbeat, by host and pid."""
    stmt = select(worker_beats).order_by(worker_beats.c.host, worker_beats.c.pid)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [{**row, "started_at": as_utc(row["started_at"]), "heartbeat_at": as_utc(row["heartbeat_at"])}
            for row in rows]


def _schedule_of(engine: Engine, fire_id: Any) -> Any:
    """SQL for the schedule id of a fire id (the text before the first ``@``), in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return func.split_part(fire_id, "@", 1)
    return func.substr(fire_id, 1, func.instr(fire_id + "@", "@") - 1)


def job_stats(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per schedule: runs ``executed`` (succeeded), ``failed`` (failed or dead), ``missed`` slots, and the
    ``last_error`` (``{"at", "error", "message_id"}``), from the kept history and slot audit.

    A summary audit row (``N slot(s) from ... to ...``) counts its N slots.
    """
    c = job_runs.c
    schedule = _schedule_of(engine, c.fire_id).label("schedule")
    counted = (select(schedule, c.status, func.count()).where(c.fire_id.is_not(None),
                                                              c.status.in_(("succeeded", "failed", "dead")))
               .group_by(schedule, c.status))
    last = (select(schedule, c.error, c.finished_at, c.message_id)
            .where(c.fire_id.is_not(None), c.status.in_(("failed", "dead")))
            .order_by(c.finished_at.desc()).limit(5000))
    missed = select(slot_audit.c.job_id, slot_audit.c.detail).where(slot_audit.c.outcome == "missed")
    stats: dict[str, dict[str, Any]] = {}

    def entry(job_id: str) -> dict[str, Any]:
        return stats.setdefault(job_id, {"executed": 0, "failed": 0, "missed": 0, "last_error": None})

    with engine.connect() as conn:
        for job_id, status, count in conn.execute(counted):
            entry(job_id)["executed" if status == "succeeded" else "failed"] += int(count)
        for job_id, error, finished, message_id in conn.execute(last):
            if entry(job_id)["last_error"] is None:
                stats[job_id]["last_error"] = {"at": as_utc(finished), "error": error, "message_id": message_id}
        for job_id, detail in conn.execute(missed):
            words = (detail or "").split()
            entry(job_id)["missed"] += int(words[0]) if words and words[0].isdigit() else 1
    return dict(sorted(stats.items()))
