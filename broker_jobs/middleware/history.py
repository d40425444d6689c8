"""Records every execution in the run history and archives dead letters.

Outcomes are read from what the worker finally does with the delivery, so
the history says what really happened:

* ``ack`` without exception: ``succeeded``; with an exception: ``retrying``
  (Retries has re-enqueued it with a backoff);
* ``nack``: ``dead`` (the message is in the queue's ``.XQ``), archived with its
  reason and traceback;
* ``skip``: ``skipped`` (duplicate fire, :class:`~broker_jobs.errors.SkipJob`),
  or nothing for a rate-limit deferral, which runs later under the same id.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.errors import ActorNotFound

from ..priorities import delivered_label, from_amqp
from ..protocol import (
    BJ_ERROR,
    BJ_OUTCOME,
    BJ_REPORT,
    BROKER_PRIORITY,
    DEFERRALS,
    FIRE_ID,
    PRIORITY,
    RETRIES,
    TRACEBACK,
    DeliveryOutcome,
    RunStatus,
    attempt_of,
    dead_attempts,
)
from ..redaction import redact, redact_call, redact_value
from ..report_files import FINAL, write_report
from ..store.history import HistoryWriter

logger = logging.getLogger(__name__)

_RUNNING, _DONE = 1, 2


def _seq(message: MessageProxy, phase: int) -> int:
    options = message.options
    return int(options.get(RETRIES, 0)) * 1_000_000 + int(options.get(DEFERRALS, 0)) * 10 + phase


def _attempt(message: MessageProxy) -> int:
    return attempt_of(message.options)


def _error_text(message: MessageProxy) -> str | None:
    # Errors and reports are stored and shown: a URL they quote loses its password here.
    text = message.options.get(BJ_ERROR)
    if text:
        return redact(str(text))
    exc = getattr(message, "_exception", None)
    if exc is None:
        return None
    if isinstance(exc, ActorNotFound):
        return f"UnknownActor: unknown actor {message.actor_name!r} on queue {message.queue_name!r}"
    return redact(f"{type(exc).__name__}: {exc}")


def _arguments(message: MessageProxy) -> dict[str, Any] | None:
    """The arguments as the run's detail shows them (redacted; None when there are none)."""
    args, kwargs = message.args, message.kwargs
    if not args and not kwargs:
        return None
    return redact_call(args, kwargs)


def _traceback(message: MessageProxy) -> str | None:
    exc = getattr(message, "_exception", None)
    text = "".join(traceback.format_exception(exc)) if exc is not None else message.options.get(TRACEBACK)
    return redact(text) if text else None


def _priority(message: MessageProxy) -> str:
    """The priority the message really had: its delivery's AMQP priority off RabbitMQ
    (``none`` when it had none), else (StubBroker) what its options asked for."""
    delivered = message.__dict__.get("amqp_priority", _NOT_DELIVERED)
    if delivered is not _NOT_DELIVERED:
        return delivered_label(delivered)
    return message.options.get(PRIORITY) or from_amqp(message.options.get(BROKER_PRIORITY)).label


_NOT_DELIVERED = object()


class History(dramatiq.Middleware):
    """Feeds a :class:`~broker_jobs.store.history.HistoryWriter`.

    Parameters:
      writer: The writer (one per process).
      log_runs: ``all`` logs every success at INFO, ``slow`` (default) those of a second
        or more and those after a retry, ``failures`` none.
      report_dir: ``JOB_REPORT_DIR``: a JSON file per finished run there (:mod:`broker_jobs.report_files`).
    """

    def __init__(self, writer: HistoryWriter, log_runs: str = "slow", report_dir: Path | None = None) -> None:
        self.writer = writer
        self.log_runs = log_runs
        self.report_dir = report_dir
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        # Runs in progress: message and start time. A row is built for one only if a
        # flush finds it still running, so a short job costs one row, built once.
        self._running: dict[str, tuple[Any, float]] = {}
        writer.watch(self._running_rows)

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.writer.open()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._running[message.message_id] = (message, time.time())

    def running_jobs(self) -> list[dict[str, Any]]:
        """The messages this process runs now: id, actor, queue and start (epoch seconds)."""
        return [{"message_id": m.message_id, "actor": m.actor_name, "queue": m.queue_name, "started_at": started}
                for m, started in list(self._running.values())]

    def _running_rows(self) -> list[dict[str, Any]]:
        return [self._row(message, RunStatus.RUNNING.value, None, _attempt(message), _seq(message, _RUNNING),
                          started, None)
                for message, started in list(self._running.values())]

    def _row(self, message: MessageProxy, status: str, error: str | None, attempt: int, seq: int,
             started: float | None, finished: float | None) -> dict[str, Any]:
        """A complete ``job_runs`` row (times in epoch seconds; the writer makes dates)."""
        options = message.options
        timestamp = message.message_timestamp
        return {
            "message_id": message.message_id,
            "actor": message.actor_name,
            "queue": message.queue_name,
            "priority": _priority(message),
            "status": status,
            "attempt": attempt,
            "seq": seq,
            "enqueued_at": timestamp / 1000 if timestamp else None,
            "started_at": started,
            "finished_at": finished,
            "duration_ms": (finished - started) * 1000 if started and finished else None,
            "error": error,
            "worker": self.worker_name,
            "fire_id": options.get(FIRE_ID),
            "report": redact_value(options.get(BJ_REPORT)),
            "args": _arguments(message),
        }

    def _finish(self, message: MessageProxy, status: str, error: str | None, attempt: int) -> float | None:
        running = self._running.pop(message.message_id, None)
        seq = _seq(message, _DONE) - (1_000_000 if status == RunStatus.RETRYING else 0)
        row = self._row(message, status, error, attempt, seq, running[1] if running else None, time.time())
        self.writer.put(row)
        if self.report_dir is not None and status in FINAL:
            try:
                write_report(self.report_dir, row)
            except OSError as exc:  # a full disk must not fail the job: the history row has it all
                logger.warning("[worker] job %s message %s: report file not written: %s", message.actor_name,
                               message.message_id, exc)
        duration_ms: float | None = row["duration_ms"]  # the row is a dict of columns of several types
        return duration_ms

    def after_ack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.queue_name.endswith(".DQ"):  # a delay ended: the run comes later
            return
        outcome = message.options.get(BJ_OUTCOME)
        if outcome == DeliveryOutcome.DEFERRED:
            self._running.pop(message.message_id, None)
            return
        if outcome == DeliveryOutcome.SKIPPED:
            self._finish(message, RunStatus.SKIPPED.value, message.options.get(BJ_ERROR), _attempt(message))
            return
        error = _error_text(message)
        if error is None:
            attempt = _attempt(message)
            duration = self._finish(message, RunStatus.SUCCEEDED.value, None, attempt)
            # One line per success costs ~10% of a no-op job's time: LOG_RUNS=slow (the default)
            # keeps it for runs of a second or more and for successes after a retry.
            if self.log_runs == "all" or (
                self.log_runs == "slow" and ((duration or 0) >= 1000 or attempt > 1)
            ):
                logger.info("[worker] job %s message %s succeeded in %d ms",
                            message.actor_name, message.message_id, duration or 0)
            elif logger.isEnabledFor(logging.DEBUG):
                logger.debug("[worker] job %s message %s succeeded in %d ms",
                             message.actor_name, message.message_id, duration or 0)
        else:
            # Retries already counted this failure in the "retries" option.
            attempt = max(1, message.options.get(RETRIES, 1))
            self._record_attempt(message, RunStatus.RETRYING.value, error, attempt, _traceback(message))
            self._finish(message, RunStatus.RETRYING.value, error, attempt)

    def _record_attempt(self, message: MessageProxy, status: str, error: str, attempt: int,
                        tb: str | None) -> None:
        running = self._running.get(message.message_id)
        self.writer.attempt(message_id=message.message_id, attempt=attempt, status=status, error=error,
                            traceback=tb, worker=self.worker_name,
                            started_at=running[1] if running else None, finished_at=time.time())

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.queue_name.endswith(".DQ") and getattr(message, "_exception", None) is None:
            return
        error = _error_text(message) or "failed"
        tb = _traceback(message)
        # A permanent error fails before Retries counts the attempt; exhausted retries were counted.
        attempts = dead_attempts(message.options)
        self._record_attempt(message, RunStatus.DEAD.value, error, attempts, tb)
        self._finish(message, RunStatus.DEAD.value, error, attempts)
        self.writer.dead_letter(
            message_id=message.message_id,
            actor=message.actor_name,
            queue=message.queue_name,
            reason=error,
            traceback=tb,
            attempts=attempts,
            dead_at=datetime.now(UTC),
            state="dead",
            body=message.encode().decode("utf-8", "replace"),
        )
        logger.warning("[worker] job %s message %s dead-lettered: %s",
                       message.actor_name, message.message_id, error)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.options.get(BJ_OUTCOME) != DeliveryOutcome.DEFERRED:
            message.options[BJ_OUTCOME] = DeliveryOutcome.SKIPPED.value

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.writer.close()
