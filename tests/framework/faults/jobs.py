"""Jobs the fault tests run in real worker processes.

``dramatiq broker_jobs.actors tests.framework.faults.jobs --queues faults`` imports this
module.  Every job that succeeds upserts one row keyed by its ``key`` in the
``fault_effects`` table of ``FAULT_EFFECTS_URL`` (PostgreSQL): the row is the
idempotent effect (it exists once however often the job runs) and its ``runs``
column counts the executions, so a test can tell "ran once" from "ran twice".
"""

from __future__ import annotations

import gc
import os
import random
import time
from typing import Any

from dramatiq.middleware import CurrentMessage
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError

from broker_jobs import job
from broker_jobs.errors import TransientJobError
from tests.support import QUEUE, UPSERT

_engine: Engine | None = None


def effects_engine() -> Engine:
    """The engine of ``FAULT_EFFECTS_URL``; short timeouts so an outage fails fast and is retried."""
    global _engine
    if _engine is None:
        _engine = create_engine(
            os.environ["FAULT_EFFECTS_URL"], pool_pre_ping=True, pool_size=4,
            connect_args={"connect_timeout": 2, "options": "-c lock_timeout=1000 -c statement_timeout=5000"},
        )
    return _engine


def upsert_effect(key: str) -> None:
    """Record the effect of ``key``; a database outage becomes a retried :class:`TransientJobError`."""
    try:
        with effects_engine().begin() as conn:
            conn.execute(UPSERT, {"key": key, "now": time.time()})
    except DBAPIError as exc:
        raise TransientJobError("effects database unavailable: " + str(exc).splitlines()[0]) from None


def _retries() -> int:
    message: Any = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message is not None else 0


@job(queue=QUEUE, max_retries=12, min_backoff=1.0)
def record_effect(key: str, work_ms: int = 0, then_ms: int = 0, fail_percent: float = 0) -> None:
    """Upsert the effect of ``key`` between ``work_ms`` and ``then_ms`` of work; fail
    ``fail_percent`` % of tries at random before the effect."""
    if work_ms:
        time.sleep(work_ms / 1000)
    if fail_percent and random.uniform(0, 100) < fail_percent:
        raise TransientJobError("injected transient failure")
    upsert_effect(key)
    if then_ms:  # the effect is committed, the message not yet acknowledged
        time.sleep(then_ms / 1000)


@job(queue=QUEUE, max_retries=2, min_backoff=0.05)
def poison(key: str) -> None:
    """Fails on every try: must end dead-lettered with its traceback."""
    raise RuntimeError(f"poison message {key}: this job fails on every try")


@job(queue=QUEUE, max_retries=3, min_backoff=6.0, max_backoff=20_000)
def fail_once_then_record(key: str) -> None:
    """Fails its first try (retried after 6 to 12 s, longer than the test's consumer timeout)."""
    if _retries() == 0:
        raise TransientJobError("the first try fails on purpose")
    upsert_effect(key)


@job(queue=QUEUE, max_retries=12, min_backoff=1.0)
def record_fire() -> None:
    """Upsert the effect of the schedule slot this message fires (its ``fire_id``)."""
    message: Any = CurrentMessage.get_current_message()
    upsert_effect(message.options.get("fire_id") or message.message_id)


@job(queue=QUEUE, max_retries=12, min_backoff=1.0)
def record_heap(key: str) -> None:
    """Upsert ``key`` with what this worker process's collector holds: frozen objects and young threshold."""
    upsert_effect(f"{key}:frozen={gc.get_freeze_count()}:threshold={gc.get_threshold()[0]}")
