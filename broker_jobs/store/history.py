"""Run history: a buffered writer that records executions without slowing workers.

Workers push events into memory; one background thread merges the events of
each message and upserts them in a single transaction every
``flush_interval`` seconds.  When the database is unavailable the events are
kept and written when it returns, so the history catches up after an outage.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, and_, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError

from ..clock import utc_now
from .db import get_engine
from .models import ArchivedLetter, JobRun

logger = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "dead", "skipped")
FAILED = ("failed", "dead")

_UPDATABLE = (
    "actor", "queue", "priority", "status", "attempt", "seq", "finished_at",
    "duration_ms", "error", "worker", "fire_id", "report",
)


@functools.cache
def _upsert_statement(dialect_name: str) -> Any:
    """The upsert of a batch of runs, built once per dialect (SQLAlchemy caches its compiled form)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table: Table = JobRun.__table__  # type: ignore[assignment]  # typed FromClause; a mapped class's is a Table
    stmt = dialect.insert(table)
    excluded = stmt.excluded
    set_ = {name: excluded[name] for name in _UPDATABLE}
    # An event never erases what an earlier one of the same message recorded.
    set_["started_at"] = func.coalesce(excluded.started_at, table.c.started_at)
    set_["enqueued_at"] = func.coalesce(table.c.enqueued_at, excluded.enqueued_at)
    set_["report"] = func.coalesce(excluded.report, table.c.report)
    return stmt.on_conflict_do_update(
        index_elements=["message_id"], set_=set_, where=table.c.seq <= excluded.seq
    )


def _upsert(engine: Engine, rows: list[dict[str, Any]]) -> None:
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
        if name == "report":
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
    return tuple((i, name) for i, name in enumerate(columns) if name in _TIMES | {"report", "seq", "attempt"})


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


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Two events of one message, as the upsert merges them: ``new`` wins, except that it
    never erases a start time or a report, and the first enqueue time stays."""
    merged = {**old, **new}
    for name in ("started_at", "report"):
        if new.get(name) is None:
            merged[name] = old.get(name)
    if old.get("enqueued_at") is not None:
        merged["enqueued_at"] = old["enqueued_at"]
    return merged


#: Events waiting that wake the writer before its interval ends. SQLite's cost per row falls
#: with the batch (its rows share the index pages they touch): 16.8 µs at 500, 13.9 at 2,000.
FLUSH_AT = 2000


def _storable(text: Any) -> Any:
    """``text`` as every database stores it: no NUL (PostgreSQL refuses it), no lone surrogate."""
    if not isinstance(text, str):
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _storable_letter(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: _storable(value) for key, value in fields.items()}


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
        # What worker threads hand in: appended without a lock, merged into _runs by the flush.
        self._incoming: deque[dict[str, Any]] = deque()
        # Rows of the runs still in progress, asked for at each flush (see :meth:`watch`).
        self._inflight: list[weakref.WeakMethod[Callable[[], list[dict[str, Any]]]]] = []
        self._dead: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.healthy = True
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # The writer thread does not exist in a forked child: the next event starts one.
        self._thread = None
        self._lock = threading.Lock()

    def watch(self, running_rows: Callable[[], list[dict[str, Any]]]) -> None:
        """Let each flush also write the rows ``running_rows()`` (a bound method) returns:
        the runs in progress.  Held weakly: a middleware thrown away stops being asked."""
        self._inflight = [ref for ref in self._inflight if ref() is not None]
        self._inflight.append(weakref.WeakMethod(running_rows))

    def record(self, message_id: str, **fields: Any) -> None:
        """Merge ``fields`` (an event of ``message_id``) into its pending row."""
        self.put({"message_id": message_id, **fields})

    def put(self, row: dict[str, Any]) -> None:
        """Queue ``row`` for writing; rows of one message merge by ``seq`` when flushed."""
        if self._thread is None:
            self._ensure_thread()
        incoming = self._incoming
        if len(incoming) + len(self._runs) >= self.max_buffer:
            self.dropped += 1
            return
        incoming.append(row)
        if len(incoming) >= FLUSH_AT and not self._wake.is_set():
            self._wake.set()

    def _merge_incoming(self) -> None:
        """Fold what worker threads handed in into ``_runs`` (under ``_lock``)."""
        runs, pop = self._runs, self._incoming.popleft
        while True:
            try:
                row = pop()
            except IndexError:
                return
            message_id = row["message_id"]
            old = runs.get(message_id)
            if old is None:
                runs[message_id] = row
            elif (row.get("seq") or 0) >= (old.get("seq") or 0):
                runs[message_id] = _merge(old, row)

    def dead_letter(self, **fields: Any) -> None:
        """Archive a dead-lettered message (reason, traceback, body)."""
        self._ensure_thread()
        with self._lock:
            self._dead.append(_storable_letter(fields))
        self._wake.set()

    def dead_letter_now(self, **fields: Any) -> bool:
        """Archive a dead letter before returning (the caller settles the message after).

        With the database unreachable the letter waits in memory like any other
        event and False is returned: the message itself is in its ``.XQ`` either way.
        """
        letter = _storable_letter(fields)
        try:
            with get_engine(self.database_url).begin() as conn:
                conn.execute(insert(ArchivedLetter), [letter])
            return True
        except Exception as exc:  # outage or not, the letter must not be lost
            logger.warning("[history] dead letter %s kept in memory: %s", letter.get("message_id"),
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.dead_letter(**letter)
            return False

    def flush(self) -> bool:
        """Write everything pending now; False if the database refused."""
        with self._lock:
            self._merge_incoming()
            runs, self._runs = self._runs, {}
            dead, self._dead = list(self._dead), deque()
        for ref in self._inflight:
            running_rows = ref()
            if running_rows is None:
                continue
            try:
                rows = running_rows()
            except Exception:  # a run ended meanwhile; the next flush sees it
                continue
            for row in rows:
                runs.setdefault(row["message_id"], row)
        if not runs and not dead:
            return True
        try:
            engine = get_engine(self.database_url)
            if runs:
                _upsert(engine, list(runs.values()))
            if dead:
                with engine.begin() as conn:
                    conn.execute(insert(ArchivedLetter), dead)
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
                _upsert(engine, [row])
            except (OperationalError, InterfaceError) as exc:
                return self._keep(runs, dead, exc)
            except Exception:
                dropped += 1
        for letter in dead:
            try:
                with engine.begin() as conn:
                    conn.execute(insert(ArchivedLetter), [letter])
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

    def close(self) -> None:
        """Stop the writer thread after a last flush."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None  # the next event starts a new one
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10)
        self.flush()

    def open(self) -> None:
        """Start the writer and open (and migrate) its database now, at worker boot.

        Otherwise the first flush pays for it while the first jobs run.  Never
        raises: with the database down, the events wait in memory as usual.
        """
        self._ensure_thread()
        try:
            get_engine(self.database_url)
        except Exception as exc:
            logger.warning("[history] database unavailable at start, history will catch up: %s",
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:  # a fork resets _thread (_forked)
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
            self._thread.start()
            # A process stopped without a clean worker shutdown (a second SIGTERM, as when
            # a whole process group is signalled) still writes what it buffered.
            atexit.unregister(self.flush)
            atexit.register(self.flush)

    def _run(self) -> None:
        backoff = self.flush_interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            ok = self.flush()
            backoff = self.flush_interval if ok else min(max(backoff * 2, 0.5), 5.0)


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
    now = now or utc_now()
    table: Table = JobRun.__table__  # type: ignore[assignment]  # typed FromClause; a mapped class's is a Table
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
