"""Run history: a buffered writer that records executions without slowing workers.

Workers push events into memory; one background thread merges the events of
each message and upserts them in a single transaction every
``flush_interval`` seconds.  When the database is unavailable the events are
kept and written when it returns, so the history catches up after an outage.
The SQL is in :mod:`broker_jobs.store.runs`, loaded at the first write: importing
this module (as every process that builds the broker does) costs no SQLAlchemy.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

logger = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "dead", "skipped")


def _sql() -> ModuleType:
    from . import runs  # deferred: SQLAlchemy, at the first write (a process that only enqueues never pays it)

    return runs


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
        # Failed attempts (error and traceback each), written beside the runs.
        self._attempts: deque[dict[str, Any]] = deque()
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

    def attempt(self, **fields: Any) -> None:
        """Record a failed attempt of a message (its error and traceback)."""
        self._ensure_thread()
        self._attempts.append(_storable_letter(fields))

    def dead_letter_now(self, **fields: Any) -> bool:
        """Archive a dead letter before returning (the caller settles the message after).

        With the database unreachable the letter waits in memory like any other
        event and False is returned: the message itself is in its ``.XQ`` either way.
        """
        letter = _storable_letter(fields)
        try:
            sql = _sql()
            sql.insert_letters(sql.engine_for(self.database_url), [letter])
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
            attempts, self._attempts = list(self._attempts), deque()
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
        if not runs and not dead and not attempts:
            return True
        sql = _sql()
        try:
            engine = sql.engine_for(self.database_url)
            if runs:
                sql.upsert_runs(engine, list(runs.values()))
            if dead:
                sql.insert_letters(engine, dead)
        except sql.OUTAGE as exc:  # the database is down or locked
            self._attempts.extendleft(reversed(attempts))
            return self._keep(runs, dead, exc)
        except sql.BAD_ROW as exc:
            # Not an outage: a bad row. Write row by row and drop only the bad ones,
            # so one bad event never holds the rest of the history back.
            self._attempts.extendleft(reversed(attempts))
            return self._write_one_by_one(runs, dead, exc)
        except Exception as exc:
            self._attempts.extendleft(reversed(attempts))
            return self._keep(runs, dead, exc)
        if attempts:
            try:
                sql.insert_attempts(engine, attempts)
            except Exception as exc:  # a record of errors: never holds the runs back
                logger.warning("[history] %d failed attempts not recorded: %s", len(attempts),
                               str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if not self.healthy:
            logger.info("[history] database back, history caught up")
        self.healthy = True
        return True

    def _write_one_by_one(self, runs: dict[str, dict[str, Any]], dead: list[dict[str, Any]],
                          first: Exception) -> bool:
        sql = _sql()
        engine = sql.engine_for(self.database_url)
        dropped = 0
        for row in runs.values():
            try:
                sql.upsert_runs(engine, [row])
            except sql.OUTAGE as exc:
                return self._keep(runs, dead, exc)
            except Exception:
                dropped += 1
        for letter in dead:
            try:
                sql.insert_letters(engine, [letter])
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
            _sql().engine_for(self.database_url)
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


writer = HistoryWriter()
