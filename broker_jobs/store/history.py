"""Run history: a buffered writer that records executions without slowing workers.

Workers push events into memory; one background thread merges the events of
each message and upserts them in a single transaction every
``flush_interval`` seconds.  When the database is unavailable the events are
kept and written when it returns, so the history catches up after an outage.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, and_, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from .db import get_engine
from .models import DeadLetter, JobRun

logger = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "dead", "skipped")
FAILED = ("failed", "dead")

_UPDATABLE = (
    "actor", "queue", "priority", "status", "attempt", "seq", "finished_at",
    "duration_ms", "error", "worker", "fire_id", "report",
)


def _upsert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    table: Table = JobRun.__table__  # type: ignore[assignment]
    stmt = dialect.insert(table)
    excluded = stmt.excluded
    set_ = {name: excluded[name] for name in _UPDATABLE}
    # An event never erases what an earlier one of the same message recorded.
    set_["started_at"] = func.coalesce(excluded.started_at, table.c.started_at)
    set_["enqueued_at"] = func.coalesce(table.c.enqueued_at, excluded.enqueued_at)
    set_["report"] = func.coalesce(excluded.report, table.c.report)
    stmt = stmt.on_conflict_do_update(
        index_elements=["message_id"], set_=set_, where=table.c.seq <= excluded.seq
    )
    with engine.begin() as conn:
        conn.execute(stmt, rows)


class HistoryWriter:
    """Buffers run events and dead letters and writes them in batches.

    Parameters:
      database_url: Where to write (default ``DATABASE_URL``).
      flush_interval: Seconds between writes.
      max_buffer: Events kept while the database is down before the oldest are dropped.
    """

    def __init__(
        self, database_url: str | None = None, flush_interval: float = 1.0, max_buffer: int = 200_000
    ) -> None:
        self.database_url = database_url
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self._runs: dict[str, dict[str, Any]] = {}
        # Runs in progress: the row is only built if a flush finds them still running,
        # so a job that finishes between two flushes costs one row, built once.
        self._inflight: dict[str, Callable[[], dict[str, Any]]] = {}
        self._dead: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.dropped = 0
        self.healthy = True

    def record(self, message_id: str, **fields: Any) -> None:
        """Merge ``fields`` into the pending row of ``message_id``."""
        self._ensure_thread()
        with self._lock:
            row = self._runs.get(message_id)
            if row is None:
                if len(self._runs) >= self.max_buffer:
                    self.dropped += 1
                    return
                self._runs[message_id] = row = {"message_id": message_id, "started_at": None,
                                                "enqueued_at": None, "report": None}
                for name in _UPDATABLE:
                    row.setdefault(name, None)
            if (fields.get("seq") or 0) >= (row.get("seq") or 0):
                row.update(fields)
        if len(self._runs) >= 500:
            self._wake.set()

    def running(self, message_id: str, row: Callable[[], dict[str, Any]]) -> None:
        """Note that ``message_id`` started; ``row()`` builds its row if a flush sees it running."""
        self._ensure_thread()
        self._inflight[message_id] = row

    def finished(self, message_id: str, **fields: Any) -> None:
        """Record the outcome of a run noted with :meth:`running` (or not)."""
        start = self._inflight.pop(message_id, None)
        if start is not None:
            fields = {**start(), **fields}
        self.record(message_id, **fields)

    def dead_letter(self, **fields: Any) -> None:
        """Archive a dead-lettered message (reason, traceback, body)."""
        self._ensure_thread()
        with self._lock:
            self._dead.append(fields)
        self._wake.set()

    def flush(self) -> bool:
        """Write everything pending now; False if the database refused."""
        with self._lock:
            runs, self._runs = self._runs, {}
            dead, self._dead = list(self._dead), deque()
        for mid, row in list(self._inflight.items()):
            if mid not in runs:
                try:
                    runs[mid] = {"message_id": mid, **row()}
                except Exception:  # the run ended meanwhile; its outcome comes next flush
                    continue
        if not runs and not dead:
            return True
        try:
            engine = get_engine(self.database_url)
            if runs:
                _upsert(engine, [self._complete(r) for r in runs.values()])
            if dead:
                with engine.begin() as conn:
                    conn.execute(insert(DeadLetter), dead)
        except (OperationalError, InterfaceError) as exc:  # the database is down or locked
            return self._keep(runs, dead, exc)
        except StatementError as exc:
            # Not an outage: a bad row. Write row by row and drop only the bad ones,
            # so one bad event never holds the rest of the history back.
            return self._write_one_by_one(runs, dead, exc)
        except Exception as exc:
            return self._keep(runs, dead, exc)
        if not self.healthy:
            logger.info("[history] database back, history caught up")
        self.healthy = True
        return True

    def _write_one_by_one(self, runs: dict[str, dict[str, Any]], dead: list[dict[str, Any]],
                          first: Exception) -> bool:
        engine = get_engine(self.database_url)
        dropped = 0
        for row in runs.values():
            try:
                _upsert(engine, [self._complete(row)])
            except (OperationalError, InterfaceError) as exc:
                return self._keep(runs, dead, exc)
            except Exception:
                dropped += 1
        for letter in dead:
            try:
                with engine.begin() as conn:
                    conn.execute(insert(DeadLetter), [letter])
            except Exception:
                dropped += 1
        self.dropped += dropped
        logger.error("[history] dropped %d malformed events: %s", dropped, str(first).splitlines()[0])
        return True

    def _keep(self, runs: dict[str, dict[str, Any]], dead: list[dict[str, Any]], exc: Exception) -> bool:
        """Keep the events of a failed write for the next flush (the database is down)."""
        if self.healthy:
            logger.warning("[history] database unavailable, keeping %d events: %s",
                           len(runs) + len(dead), str(exc).splitlines()[0])
        self.healthy = False
        with self._lock:
            for mid, row in runs.items():
                newer = self._runs.get(mid)
                if newer is None or (row.get("seq") or 0) > (newer.get("seq") or 0):
                    self._runs[mid] = row
            self._dead.extendleft(reversed(dead))
        return False

    @staticmethod
    def _complete(row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        for name in ("started_at", "enqueued_at", "report"):
            row.setdefault(name, None)
        # The hot path records epoch seconds; dates are made here, off the worker threads.
        for name in ("enqueued_at", "started_at", "finished_at"):
            value = row.get(name)
            if isinstance(value, int | float):
                row[name] = datetime.fromtimestamp(value, UTC)
        for name in _UPDATABLE:
            row.setdefault(name, None)
        row["seq"] = row["seq"] or 0
        row["attempt"] = row["attempt"] or 1
        return row

    def close(self) -> None:
        """Stop the writer thread after a last flush."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)
        self.flush()

    def _ensure_thread(self) -> None:
        import os

        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
            self._thread.start()
            # A process stopped without a clean worker shutdown (a second SIGTERM, as when
            # a whole process group is signalled) still writes what it buffered.
            atexit.register(self.flush)

    def _run(self) -> None:
        backoff = self.flush_interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            ok = self.flush()
            backoff = self.flush_interval if ok else min(max(backoff * 2, 0.5), 5.0)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def query_runs(
    engine: Engine,
    *,
    actor: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[JobRun]:
    """The most recent runs, newest first, optionally filtered."""
    stmt = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(JobRun.actor == actor)
    if status:
        stmt = stmt.where(JobRun.status == status)
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(stmt))


def prune(
    engine: Engine,
    *,
    keep_completed: int,
    completed_ttl: float,
    failed_ttl: float,
    now: datetime | None = None,
) -> int:
    """Apply the retention: completed runs at most ``keep_completed`` per actor and
    ``completed_ttl`` seconds old, failed ones ``failed_ttl`` seconds.

    Returns:
      The number of rows deleted.
    """
    now = now or utcnow()
    table: Table = JobRun.__table__  # type: ignore[assignment]
    deleted = 0
    with engine.begin() as conn:
        deleted += conn.execute(
            delete(table).where(and_(table.c.status.in_(("succeeded", "skipped")),
                                     table.c.finished_at < now - timedelta(seconds=completed_ttl)))
        ).rowcount
        deleted += conn.execute(
            delete(table).where(and_(table.c.status.in_(FAILED),
                                     table.c.finished_at < now - timedelta(seconds=failed_ttl)))
        ).rowcount
        ranked = (
            select(table.c.id, func.row_number().over(
                partition_by=table.c.actor, order_by=(table.c.finished_at.desc(), table.c.id.desc())).label("rank"))
            .where(table.c.status.in_(("succeeded", "skipped")))
            .subquery()
        )
        excess = select(ranked.c.id).where(ranked.c.rank > keep_completed)
        deleted += conn.execute(delete(table).where(table.c.id.in_(excess))).rowcount
        # Runs stuck "running" for a day belong to workers that died.
        conn.execute(
            table.update()
            .where(or_(table.c.status == "running", table.c.status == "retrying"))
            .where(table.c.started_at < now - timedelta(days=1))
            .values(status="failed", error="abandoned: worker died")
        )
    return deleted


writer = HistoryWriter()
