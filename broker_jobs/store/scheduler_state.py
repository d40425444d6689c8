"""The scheduler's durable state, shared by every instance through ``DATABASE_URL``.

* ``sched_job_state``: the last slot handled per job, written with the leader's
  fencing token in the same transaction that checks ``sched_fence``, so a
  deposed leader's write is rejected.
* ``sched_audit``: every slot's outcome (fired, caught_up, backfilled, missed,
  skipped_stale, skipped_overlap, superseded, paused).
* ``sched_open_fires``: published messages not seen finished yet (the overlap policy).
* ``sched_controls`` (pauses and notes) and ``sched_runtime_jobs`` (``jobs add``).
* ``sched_fence``, ``sched_leases`` (the database lease) and ``sched_instances`` (heartbeats).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Engine,
    Row,
    case,
    delete,
    insert,
    select,
)
from sqlalchemy import update as sql_update

from ..clock import as_utc, utc_now
from ..protocol import FireId, Flight
from .db import get_engine, upsert_insert
from .models import fences, instances, job_controls, job_runs, job_state, open_fires, runtime_jobs, slot_audit

#: Run statuses that mean "still in the fleet's hands".
ACTIVE = ("running", "retrying")
#: A published message never seen starting is forgotten after this long (lost or purged).
OPEN_FIRE_TTL = timedelta(hours=24)
FENCE = "scheduler"


class FencedOut(Exception):
    """A newer leader exists: this process's writes are refused."""


def _upsert(engine: Engine, table: Any, rows: list[dict[str, Any]], key: str, conn: Any) -> None:
    stmt = upsert_insert(engine, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key], set_={c: stmt.excluded[c] for c in rows[0] if c != key})
    conn.execute(stmt, rows)


class SchedulerStore:
    """Reads and writes the scheduler tables.

    Parameters:
      engine: The database (``get_engine(DATABASE_URL)``).
      fence: The fence row this instance's leader writes under (its lease's name: one per group).
    """

    def __init__(self, engine: Engine, fence: str = FENCE) -> None:
        self.engine = engine
        self.fence_name = fence

    # -- reads -------------------------------------------------------------------------------------
    def states(self) -> dict[str, Row[Any]]:
        """Every job's state row, by job id."""
        with self.engine.connect() as conn:
            return {row.job_id: row for row in conn.execute(select(job_state))}

    def controls(self) -> dict[str, Row[Any]]:
        """Every pause row, by job id."""
        with self.engine.connect() as conn:
            return {row.job_id: row for row in conn.execute(select(job_controls))}

    def runtime_specs(self) -> dict[str, dict[str, Any]]:
        """The runtime jobs' entries, by job id."""
        with self.engine.connect() as conn:
            return {r.job_id: dict(r.spec) for r in conn.execute(select(runtime_jobs.c.job_id, runtime_jobs.c.spec))}

    def audit(self, job_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent slot outcomes of ``job_id``, newest first."""
        stmt = (select(slot_audit).where(slot_audit.c.job_id == job_id)
                .order_by(slot_audit.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        for row in rows:
            row["slot"], row["recorded_at"] = as_utc(row["slot"]), as_utc(row["recorded_at"])
        return rows

    def fence(self) -> int:
        """The current fencing token (0 when no leader ever wrote)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(fences.c.token).where(fences.c.name == self.fence_name)) or 0)

    def in_flight(self, job_ids: Iterable[str] | None = None, *,
                  now: datetime | None = None) -> dict[str, list[Flight]]:
        """Runs still queued or running, by job id, closing the fires seen finished.

        A fire is open while no run with its fire id has finished, or while one
        is running or retrying.  Runs with a fire id the scheduler never recorded
        (a periodiq trigger, a lost record) count when they are running.
        """
        now = now or utc_now()
        wanted = None if job_ids is None else set(job_ids)
        with self.engine.connect() as conn:
            stmt = select(open_fires.c.fire_id, open_fires.c.job_id, open_fires.c.published_at)
            if wanted is not None:
                stmt = stmt.where(open_fires.c.job_id.in_(wanted))
            fires = list(conn.execute(stmt))
            ids = [f.fire_id for f in fires]
            statuses: dict[str | None, set[str]] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows = conn.execute(select(job_runs.c.fire_id, job_runs.c.status).where(job_runs.c.fire_id.in_(chunk)))
                for fire_id, status in rows:
                    statuses.setdefault(fire_id, set()).add(status)
            running = conn.execute(select(job_runs.c.fire_id)
                                   .where(job_runs.c.status.in_(ACTIVE), job_runs.c.fire_id.is_not(None)))
            running_ids: set[str] = {r[0] for r in running if r[0]}
        flights: dict[str, list[Flight]] = {}
        closed: list[str] = []
        for fire in fires:
            seen = statuses.get(fire.fire_id, set())
            if seen & set(ACTIVE):
                flights.setdefault(fire.job_id, []).append(Flight(fire.fire_id, queued=False))
            elif seen or (as_utc(fire.published_at) or now) < now - OPEN_FIRE_TTL:
                closed.append(fire.fire_id)
            else:
                flights.setdefault(fire.job_id, []).append(Flight(fire.fire_id, queued=True))
        known = {f.fire_id for f in fires}
        for fire_id in running_ids - known:
            job_id = FireId.parse(fire_id).job_id
            if wanted is None or job_id in wanted:
                flights.setdefault(job_id, []).append(Flight(fire_id, queued=False))
        if closed:
            self.close_fires(closed)
        return flights

    # -- writes ------------------------------------------------------------------------------------
    def close_fires(self, fire_ids: list[str]) -> None:
        """Forget open fires (finished, superseded or lost)."""
        with self.engine.begin() as conn:
            for start in range(0, len(fire_ids), 500):
                conn.execute(delete(open_fires).where(open_fires.c.fire_id.in_(fire_ids[start:start + 500])))

    def raise_fence(self, token: int) -> None:
        """Make ``token`` the lowest token allowed to write (a new leader calls this first)."""
        table = fences
        stmt = upsert_insert(self.engine, table).values(name=self.fence_name, token=token)
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={
            "token": case((table.c.token < stmt.excluded.token, stmt.excluded.token), else_=table.c.token)})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def commit(self, *, token: int | None, states: list[dict[str, Any]], audit: list[dict[str, Any]],
               fires: list[dict[str, Any]]) -> None:
        """Write slot outcomes in one transaction.

        Parameters:
          token: The leader's fencing token; None for operator actions (run-now,
            backfill), which do not move the last slot.
          states: ``sched_job_state`` rows to upsert.
          audit: ``sched_audit`` rows to insert.
          fires: ``sched_open_fires`` rows to insert.

        Raises:
          FencedOut: a newer leader has written; nothing was written.
        """
        with self.engine.begin() as conn:
            if token is not None:
                # Compare-and-set on the fence row: it also serializes against raise_fence.
                held = conn.execute(sql_update(fences).where(fences.c.name == self.fence_name, fences.c.token <= token)
                                    .values(token=token)).rowcount
                if not held:
                    raise FencedOut(f"fencing token {token} is stale")
            if states:
                _upsert(self.engine, job_state, states, "job_id", conn)
            if audit:
                conn.execute(insert(slot_audit), audit)
            if fires:
                _upsert(self.engine, open_fires, fires, "fire_id", conn)

    def set_control(self, job_id: str, *, paused: bool, note: str | None) -> None:
        """Pause or resume ``job_id`` (the note says why, for the next operator)."""
        with self.engine.begin() as conn:
            _upsert(self.engine, job_controls,
                    [{"job_id": job_id, "paused": paused, "note": note, "updated_at": utc_now()}], "job_id", conn)

    def add_runtime(self, job_id: str, spec: dict[str, Any]) -> None:
        """Store a runtime job's entry (replacing one of the same id)."""
        with self.engine.begin() as conn:
            _upsert(self.engine, runtime_jobs,
                    [{"job_id": job_id, "spec": spec, "created_at": utc_now()}], "job_id", conn)

    def remove_runtime(self, job_id: str) -> bool:
        """Delete a runtime job; False if there was none."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(runtime_jobs).where(runtime_jobs.c.job_id == job_id)).rowcount)

    def heartbeat(self, instance_id: str, *, started_at: datetime, leader: bool, token: int | None,
                  errors: int, last_error: str | None) -> None:
        """Record that ``instance_id`` is alive (and whether it leads)."""
        row = {"instance_id": instance_id, "started_at": started_at, "heartbeat_at": utc_now(), "leader": leader,
               "token": token, "errors": errors, "last_error": last_error}
        with self.engine.begin() as conn:
            _upsert(self.engine, instances, [row], "instance_id", conn)
            # Instances silent for a day are gone for good.
            conn.execute(delete(instances).where(instances.c.heartbeat_at < utc_now() - timedelta(days=1)))

    def instances(self) -> list[dict[str, Any]]:
        """Every instance seen in the last day, most recent heartbeat first."""
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(instances).order_by(instances.c.heartbeat_at.desc()))]
        for row in rows:
            row["started_at"], row["heartbeat_at"] = as_utc(row["started_at"]), as_utc(row["heartbeat_at"])
        return rows

    def prune_audit(self, older_than: datetime) -> int:
        """Delete audit rows recorded before ``older_than``."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(slot_audit).where(slot_audit.c.recorded_at < older_than)).rowcount)


def open_scheduler_store(database_url: str | None = None, fence: str = FENCE) -> SchedulerStore:
    """The scheduler's store on ``database_url`` (default ``DATABASE_URL``), fenced under ``fence``.

    Its tables come from the migrations :func:`~broker_jobs.store.db.get_engine` runs on first use.
    """
    return SchedulerStore(get_engine(database_url), fence)
