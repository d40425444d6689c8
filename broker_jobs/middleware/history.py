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

import functools
import logging
import os
import socket
import time
import traceback
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.errors import ActorNotFound

from ..priorities import from_amqp
from ..store.history import HistoryWriter

logger = logging.getLogger(__name__)

_RUNNING, _DONE = 1, 2


def _seq(message: Any, phase: int) -> int:
    options = message.options
    return int(options.get("retries", 0)) * 1_000_000 + int(options.get("deferrals", 0)) * 10 + phase


def _attempt(message: Any) -> int:
    return int(message.options.get("retries", 0)) + 1


def _error_text(message: Any) -> str | None:
    text = message.options.get("bj_error")
    if text:
        return str(text)
    exc = getattr(message, "_exception", None)
    if exc is None:
        return None
    if isinstance(exc, ActorNotFound):
        return f"UnknownActor: unknown actor {message.actor_name!r} on queue {message.queue_name!r}"
    return f"{type(exc).__name__}: {exc}"


class History(dramatiq.Middleware):
    """Feeds a :class:`~broker_jobs.store.history.HistoryWriter`.

    Parameters:
      writer: The writer (one per process).
      log_runs: ``all`` logs every success at INFO, ``slow`` (default) those of a second
        or more and those after a retry, ``failures`` none.
    """

    def __init__(self, writer: HistoryWriter, log_runs: str = "slow") -> None:
        self.writer = writer
        self.log_runs = log_runs
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._started: dict[str, float] = {}

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._started[message.message_id] = started = time.time()
        self.writer.running(message.message_id, functools.partial(self._running_row, message, started))

    def _identity(self, message: Any) -> dict[str, Any]:
        """Who the run is and where it ran: the fields every row of a message carries."""
        options = message.options
        return {
            "actor": message.actor_name,
            "queue": message.queue_name,
            "priority": options.get("priority") or from_amqp(options.get("broker_priority")).label,
            "enqueued_at": message.message_timestamp / 1000 if message.message_timestamp else None,
            "worker": self.worker_name,
            "fire_id": options.get("fire_id"),
        }

    def _running_row(self, message: Any, started: float) -> dict[str, Any]:
        return {
            **self._identity(message),
            "status": "running",
            "attempt": message.options.get("retries", 0) + 1,
            "seq": _seq(message, _RUNNING),
            "started_at": started,
            "error": None,
        }

    def _finish(self, message: Any, status: str, error: str | None, attempt: int) -> float | None:
        started = self._started.pop(message.message_id, None)
        now = time.time()
        duration = (now - started) * 1000 if started else None
        options = message.options
        fields: dict[str, Any] = {
            "status": status,
            "attempt": attempt,
            "seq": _seq(message, _DONE) - (1_000_000 if status == "retrying" else 0),
            "finished_at": now,
            "duration_ms": duration,
            "error": error,
        }
        if started is None:  # no running row to merge: say who and where
            fields.update(self._identity(message))
        report = options.get("bj_report")
        if report is not None:
            fields["report"] = report
        self.writer.finished(message.message_id, **fields)
        return duration

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.queue_name.endswith(".DQ"):  # a delay ended: the run comes later
            return
        outcome = message.options.get("bj_outcome")
        if outcome == "deferred":
            self._started.pop(message.message_id, None)
            return
        if outcome == "skipped":
            self._finish(message, "skipped", message.options.get("bj_error"), _attempt(message))
            return
        error = _error_text(message)
        if error is None:
            attempt = _attempt(message)
            duration = self._finish(message, "succeeded", None, attempt)
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
            self._finish(message, "retrying", error, max(1, message.options.get("retries", 1)))

    def after_nack(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.queue_name.endswith(".DQ") and getattr(message, "_exception", None) is None:
            return
        error = _error_text(message) or "failed"
        exc = getattr(message, "_exception", None)
        tb = "".join(traceback.format_exception(exc)) if exc is not None else message.options.get("traceback")
        # A permanent error fails before Retries counts the attempt; exhausted retries were counted.
        retries = message.options.get("retries", 0)
        attempts = retries + 1 if message.options.get("bj_error") else max(1, retries)
        self._finish(message, "dead", error, attempts)
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

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if message.options.get("bj_outcome") != "deferred":
            message.options["bj_outcome"] = "skipped"

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.writer.close()
