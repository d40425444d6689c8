"""Webhook alerts: a job that died (retries exhausted) or a schedule slot that was missed.

Posting happens on one background thread fed by a bounded queue, so a slow or
dead webhook never delays a worker or the scheduler; the caller only pays for
a dictionary lookup and a ``put_nowait``.  Each job alerts at most once per
``ALERT_COOLDOWN`` seconds across every process and host (the cooldown is a
claim in Redis or the database, taken by the sender thread), and posts go through the sender's own circuit breaker
(``BREAKER_FAIL_MAX`` failures in a row open it for ``BREAKER_RESET_TIMEOUT`` seconds, the limits every outbound
HTTP call uses).

Payload (JSON)::

    {"kind": "job_failed" | "slot_missed", "job": "etl_sync", "summary": "...",
     "detail": {...}, "at": "2026-01-01T10:05:00+00:00", "service": "broker-jobs"}
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from .coordination import Claims, get_claims
from .redaction import redact
from .settings import get_settings

logger = logging.getLogger(__name__)

#: Alerts waiting for the sender beyond this are dropped (and counted).
MAX_PENDING = 1000


class AlertSender:
    """Posts alerts to one webhook from a background thread.

    Parameters:
      url: The webhook URL (``None``: alerts are dropped silently).
      cooldown: Seconds during which a second alert for the same job is suppressed.
      timeout: Seconds one post may take.
      fail_max: Consecutive failures that open the circuit.
      reset_timeout: Seconds the circuit stays open before one trial post.
      breaker: A circuit breaker to share (default: a new one from ``fail_max``/``reset_timeout``).
      claims: Where the cooldown is shared between processes and hosts
        (:mod:`broker_jobs.coordination`); ``None``: this process only.
    """

    def __init__(self, url: str | None, cooldown: float = 900.0, timeout: float = 5.0,
                 fail_max: int = 5, reset_timeout: float = 60.0, breaker: Any = None,
                 claims: Claims | None = None) -> None:
        self.url = url
        self.claims = claims
        self.cooldown = cooldown
        self.timeout = timeout
        import pybreaker  # deferred: pybreaker loads redis-py; an alerter is made at the first alert

        self.breaker = breaker or pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_timeout,
                                                           name="alert-webhook")
        self.sent = 0
        self.failed = 0
        self.suppressed = 0
        self.dropped = 0
        self._last: dict[str, float] = {}
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(MAX_PENDING)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def notify(self, kind: str, job: str, summary: str, **detail: Any) -> bool:
        """Queue an alert unless ``job`` alerted within the cooldown; never blocks.

        Returns:
          Whether the alert was queued.
        """
        if not self.url:
            return False
        now = time.monotonic()
        with self._lock:
            last = self._last.get(job)
            if last is not None and now - last < self.cooldown:
                self.suppressed += 1
                return False
            self._last[job] = now
        payload = {"kind": kind, "job": job, "summary": summary, "detail": detail,
                   "at": datetime.now(UTC).isoformat(), "service": "broker-jobs"}
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.dropped += 1
            return False
        self._ensure_thread()
        return True

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued alert was attempted (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                self._send(payload)
            finally:
                self._queue.task_done()

    def _claimed(self, payload: dict[str, Any]) -> bool:
        """Whether this process may post (no other process alerted for the job within the cooldown)."""
        if self.claims is None or self.cooldown <= 0:
            return True
        owner = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        try:
            return bool(self.claims.claim(f"alert:{payload['job']}", owner, self.cooldown) == owner)
        except Exception as exc:  # an alert is worth a duplicate more than a silence
            logger.debug("[alerts] cooldown not shared: %s", exc)
            return True

    def _send(self, payload: dict[str, Any]) -> None:
        if not self._claimed(payload):
            self.suppressed += 1
            return

        import pybreaker  # deferred: pybreaker loads redis-py (imported once the alerter exists)

        def post() -> None:
            import httpx  # deferred: httpx, when an alert is sent (every worker imports this module)

            response = httpx.post(self.url or "", json=payload, timeout=self.timeout)
            response.raise_for_status()

        try:
            self.breaker.call(post)
            self.sent += 1
            logger.info("[alerts] sent %s alert for job %s", payload["kind"], payload["job"])
        except pybreaker.CircuitBreakerError:
            self.failed += 1
            logger.warning("[alerts] webhook circuit open, %s alert for job %s dropped",
                           payload["kind"], payload["job"])
        except Exception as exc:
            self.failed += 1
            logger.warning("[alerts] webhook failed for job %s: %s", payload["job"], exc)


_sender: AlertSender | None = None
_sender_lock = threading.Lock()


def get_sender() -> AlertSender:
    """The process's sender, configured from ``ALERT_WEBHOOK_URL`` and ``ALERT_COOLDOWN``."""
    global _sender
    if _sender is None:
        with _sender_lock:
            if _sender is None:
                try:
                    settings = get_settings()
                    _sender = AlertSender(settings.alert_webhook_url, settings.alert_cooldown,
                                          fail_max=settings.breaker_fail_max,
                                          reset_timeout=settings.breaker_reset_timeout, claims=get_claims())
                except Exception:  # alerts never break the caller
                    _sender = AlertSender(None)
    return _sender


def set_sender(sender: AlertSender | None) -> None:
    """Replace the process's sender (tests); ``None`` re-reads the settings on next use."""
    global _sender
    _sender = sender


def job_failed(job: str, message_id: str, queue_name: str, error: str, attempts: int) -> None:
    """Alert that ``job`` died after its retries (or failed permanently)."""
    error = redact(error)
    try:
        get_sender().notify("job_failed", job, f"job {job} failed after {attempts} attempt(s): {error}",
                            message_id=message_id, queue=queue_name, error=error, attempts=attempts)
    except Exception as exc:
        logger.debug("[alerts] not queued: %s", exc)


def missed_slot(job: str, slot: datetime) -> None:
    """Alert that schedule ``job`` missed its slot at ``slot``."""
    try:
        get_sender().notify("slot_missed", job, f"job {job} missed its slot {slot.isoformat()}",
                            slot=slot.isoformat())
    except Exception as exc:
        logger.debug("[alerts] not queued: %s", exc)
