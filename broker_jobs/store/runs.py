"""The SQL of run history: the batched upsert of run rows, the dead-letter archive's inserts, the retention.

:class:`~broker_jobs.store.history.HistoryWriter` buffers events without SQLAlchemy and loads this module when it
first writes, so a process that only enqueues (``broker-jobs send``, a web request) never imports SQLAlchemy.
"""

from __future__ import annotations

import functools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from ..clock import utc_now
from .db import get_engine
from .models import dead_letters, job_runs, run_attempts

#: A write that failed because the database is down or locked (the events are kept for the next flush).
OUTAGE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
#: A write refused because of one bad row (written again row by row).
BAD_ROW = StatementError

FAILED = ("failed", "dead")

_UPDATABLE = (
    "actor", "queue", "priority", "status", "attempt", "seq", "finished_at",
    "duration_ms", "error", "worker", "fire_id", "report", "args",
)


def engine_for(database_url: str | None) -> Engine:
    """The engine the writer writes with (created and migrated once per process)."""
    return get_engine(database_url)


def insert_letters(engine: Engine, letters: list[dict[str, Any]]) -> None:
    """Archive dead letters in one transaction."""
    with engine.begin() as conn:
        conn.execute(insert(dead_letters), letters)


def insert_attempts(engine: Engine, attempts: list[dict[str, Any]]) -> None:
    """Record failed attempts (error and traceback each) in one transaction."""
    rows = [{**a, **{k: datetime.fromtimestamp(a[k], UTC) if isinstance(a.get(k), int | float) else a.get(k)
                     for k in ("started_at", "finished_at")}} for a in attempts]
    with engine.begin() as conn:
        conn.execute(insert(run_attempts), rows)


@functools.cache
def _upsert_statement(dialect_name: str) -> Any:
    """The upsert of a batch of runs, built once per dialect (SQLAlchemy caches its compiled form)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = job_runs
    stmt = dialect.insert(table)
    excluded = stmt.excluded
    set_ = {name: excluded[name] for name in _UPDATABLE}
    # An event never erases what an earlier one of the same message recorded.
    set_["started_at"] = func.coalesce(excluded.started_at, table.c.started_at)
    set_["enqueued_at"] = func.coalesce(table.c.enqueued_at, excluded.enqueued_at)
    set_["report"] = func.coalesce(excluded.report, table.c.report)
    set_["args"] = func.coalesce(excluded.args, table.c.args)
    return stmt.on_conflict_do_update(
        index_elements=["message_id"], set_=set_, where=table.c.seq <= excluded.seq
    )


def upsert_runs(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (as the writer buffers them: epoch seconds, missing columns) in one transaction."""
    if engine.dialect.name == "sqlite":
        # SQLAlchemy's per-row parameter processing cost more than SQLite's own insert
        # (benchmarks/README.md): on SQLite the rows go to the driver as tuples.
        sql, columns = _sqlite_upsert()
        params = [_sqlite_params(row, columns) for row in rows]
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, params)
        return
    with engine.begin() as conn:
        conn.execute(_upsert_statement(engine.dialect.name), [_complete(row) for row in rows])


#: The columns a run row writes (every one but the surrogate key).
_COLUMNS = ("message_id", "enqueued_at", "started_at", *_UPDATABLE)
_TIMES = frozenset({"enqueued_at", "started_at", "finished_at"})


@functools.cache
def _sqlite_upsert() -> tuple[str, tuple[str, ...]]:
    """The upsert's SQL for the sqlite3 driver (qmark parameters) and the columns in their order."""
    compiled = _upsert_statement("sqlite").compile(dialect=sqlite.dialect(), column_keys=list(_COLUMNS))
    return str(compiled), tuple(compiled.positiontup or ())


_seconds: dict[int, str] = {}


def _sqlite_time(value: Any) -> str | None:
    """A time as SQLAlchemy stores a ``DateTime`` in SQLite: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if value.__class__ is float:  # the hot path's epoch seconds; a batch shares a few seconds
        second = int(value)
        prefix = _seconds.get(second)
        if prefix is None:
            if len(_seconds) > 4096:
                _seconds.clear()
            prefix = _seconds[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{prefix}.{min(999_999, int((value - second) * 1e6 + 0.5)):06d}"
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo is not None else value
        return moment.replace(tzinfo=None).isoformat(" ", "microseconds")
    return _sqlite_time(float(value))


def _sqlite_params(row: dict[str, Any], columns: tuple[str, ...]) -> tuple[Any, ...]:
    values = list(map(row.get, columns))
    for i, name in _sqlite_conversions(columns):
        value = values[i]
        if name == "report" or name == "args":
            values[i] = None if value is None else json.dumps(value)
        elif name == "seq":
            values[i] = value or 0
        elif name == "attempt":
            values[i] = value or 1
        else:
            values[i] = _sqlite_time(value)
    return tuple(values)


@functools.cache
def _sqlite_conversions(columns: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    """(position, column) of the values the driver cannot take as they are buffered."""
    return tuple((i, name) for i, name in enumerate(columns) if name in _TIMES | {"report", "args", "seq", "attempt"})


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    """A buffered row as SQLAlchemy binds it: every column, dates as datetimes."""
    row = dict(row)
    # The hot path records epoch seconds; dates are made here, off the worker threads.
    for name in _TIMES:
        value = row.get(name)
        if isinstance(value, int | float):
            row[name] = datetime.fromtimestamp(value, UTC)
    for name in _COLUMNS:
        row.setdefault(name, None)
    row["seq"] = row["seq"] or 0
    row["attempt"] = row["attempt"] or 1
    return row


def prune(
    engine: Engine,
    *,
    keep_completed: int,
    completed_ttl: float,
    failed_ttl: float,
    keep_failed: int | None = None,
    now: datetime | None = None,
) -> int:
    """Apply the retention: completed runs at most ``keep_completed`` per actor and
    ``completed_ttl`` seconds old, failed (and dead) ones at most ``keep_failed`` per
    actor (None: no count) and ``failed_ttl`` seconds old.

    Returns:
      The number of rows deleted.
    """
    now = now or utc_now()
    table = job_runs
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
        counts = [(("succeeded", "skipped"), keep_completed)]
        if keep_failed is not None:
            counts.append((FAILED, keep_failed))
        for statuses, keep in counts:  # the newest ``keep`` of each actor survive
            ranked = (
                select(table.c.id, func.row_number().over(
                    partition_by=table.c.actor, order_by=(table.c.finished_at.desc(), table.c.id.desc())).label("rank"))
                .where(table.c.status.in_(statuses))
                .subquery()
            )
            excess = select(ranked.c.id).where(ranked.c.rank > keep)
            deleted += conn.execute(delete(table).where(table.c.id.in_(excess))).rowcount
        # Runs stuck "running" for a day belong to workers that died.
        conn.execute(
            table.update()
            .where(or_(table.c.status == "running", table.c.status == "retrying"))
            .where(table.c.started_at < now - timedelta(days=1))
            .values(status="failed", error="abandoned: worker died")
        )
    return deleted
