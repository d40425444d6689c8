"""Queue arguments: what every queue must be declared with, and which queues differ.

A queue that someone else declared first (a plain ``RabbitmqBroker()``, another
service, a hand-made definition) may lack ``x-max-priority`` or dead-lettering.
RabbitMQ refuses to redeclare it with other arguments, so the workers and
``broker-jobs send`` use such a queue as it is (priorities are then ignored on
it), say once what is wrong and how to repair it, and the queue shows as
*degraded* in ``/health``, readiness and ``broker_jobs_queue_degraded{queue}``
until ``broker-jobs queues repair`` re-creates it (:mod:`broker_jobs.repair`).

AMQP cannot read a queue's arguments back; redeclaring with ours on a
throw-away channel can: RabbitMQ answers 406 when they differ.  Only queues
that already exist are checked (a passive declare first), so a check never
creates anything.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import pika
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL

from . import registry
from .connection import QUEUES, connection_url
from .priorities import MAX_PRIORITY
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)

_CONFLICT = re.compile(r"inequivalent arg '([^']+)' for queue '([^']+)'")


@dataclass(frozen=True)
class QueueConflict:
    """A queue that exists on RabbitMQ with arguments other than ours.

    Parameters:
      queue: The queue (``Q``, ``Q.DQ`` or ``Q.XQ``).
      argument: The argument that differs (for example ``x-max-priority``).
      detail: RabbitMQ's own explanation.
    """

    queue: str
    argument: str
    detail: str

    @property
    def canonical(self) -> str:
        """The queue's family name (``default`` for ``default.DQ``)."""
        return self.queue.removesuffix(".DQ").removesuffix(".XQ")

    def warning(self) -> str:
        """One line: what is wrong, what it costs and the command that repairs it."""
        return (f"queue {self.queue!r} exists on RabbitMQ with a different {self.argument!r} ({self.detail}); "
                f"using it as it is (message priorities are ignored on it) until you run: "
                f"broker-jobs queues repair {self.canonical}")


def conflict_from(exc: BaseException, queue: str) -> QueueConflict | None:
    """The :class:`QueueConflict` a 406 PRECONDITION_FAILED describes, else None."""
    if getattr(exc, "reply_code", None) != 406:
        return None
    text = str(getattr(exc, "reply_text", exc))
    if "inequivalent arg" not in text:
        return None
    match = _CONFLICT.search(text)
    argument, name = (match.group(1), match.group(2)) if match else ("arguments", queue)
    return QueueConflict(name, argument, text.split(" - ", 1)[-1])


def wanted_arguments(queue: str, max_priority: int | None = None) -> dict[str, Any]:
    """The arguments Dramatiq declares ``queue`` with (``Q``, ``Q.DQ`` or ``Q.XQ``), ours included."""
    if queue.endswith(".XQ"):
        return {"x-message-ttl": DEAD_MESSAGE_TTL}
    canonical = queue.removesuffix(".DQ")
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{canonical}.XQ",
            "x-max-priority": MAX_PRIORITY if max_priority is None else max_priority}


def family(canonical: str) -> tuple[str, str, str]:
    """``Q``, ``Q.DQ`` and ``Q.XQ``: the queues Dramatiq declares for ``canonical``."""
    return canonical, f"{canonical}.DQ", f"{canonical}.XQ"


def check_queue(connection: pika.BlockingConnection, queue: str) -> QueueConflict | None:
    """Whether the existing ``queue`` differs from :func:`wanted_arguments` (None: same, or absent).

    Each probe uses a channel of its own: RabbitMQ closes a channel on 404 and 406.
    """
    channel = connection.channel()
    try:
        channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        return None  # absent: whoever declares it first declares it right (or not: checked then)
    channel.close()
    channel = connection.channel()
    try:
        channel.queue_declare(queue, durable=True, arguments=wanted_arguments(queue))
    except pika.exceptions.ChannelClosedByBroker as exc:
        conflict = conflict_from(exc, queue)
        if conflict is None:
            raise
        return conflict
    channel.close()
    return None


# What this process found while declaring (the worker, `send`): logged once per queue.
_reported: dict[str, QueueConflict] = {}
_lock = threading.Lock()


def report(conflict: QueueConflict) -> None:
    """Record a conflict met while declaring; the warning is logged once per queue and process."""
    with _lock:
        first = conflict.queue not in _reported
        _reported[conflict.queue] = conflict
    if first:
        logger.warning("%s", conflict.warning())


def reported() -> dict[str, QueueConflict]:
    """The conflicts this process met while declaring its queues (not re-checked)."""
    with _lock:
        return dict(_reported)


_cache: tuple[float, str, dict[str, str]] | None = None


def degraded_queues(settings: Settings | None = None, queues: list[str] | None = None,
                    max_age: float = 5.0, timeout: float = 2.0) -> dict[str, str]:
    """Queues that exist with other arguments than ours, each with the one-line warning (live check).

    For health and readiness probes: the answer is cached ``max_age`` seconds, the
    check opens one short connection.  An unreachable broker raises (the caller's
    broker check reports it).

    Parameters:
      settings: The settings (default: the process's).
      queues: Canonical queue names (default: the built-in queues and every known job's queue).
      max_age: Seconds a previous answer is reused.
      timeout: Connection and socket timeout in seconds.
    """
    global _cache
    settings = settings or get_settings()
    if queues is None:
        queues = sorted({*QUEUES, *(spec.queue for spec in registry.list())})
    key = f"{settings.rabbitmq_url}|{','.join(queues)}"
    cached = _cache
    if cached is not None and cached[1] == key and time.monotonic() - cached[0] < max_age:
        return dict(cached[2])
    url = connection_url(settings.rabbitmq_url, connection_attempts="1", socket_timeout=str(timeout),
                         blocked_connection_timeout=str(timeout))
    params = pika.URLParameters(url)
    params.stack_timeout = timeout
    connection = pika.BlockingConnection(params)
    found: dict[str, str] = {}
    try:
        for canonical in queues:
            for queue in family(canonical):
                conflict = check_queue(connection, queue)
                if conflict is not None:
                    found[queue] = conflict.warning()
    finally:
        if connection.is_open:
            connection.close()
    _cache = (time.monotonic(), key, found)
    with _lock:  # what is right now was repaired: a later conflict is worth a new warning
        for queue in [q for q in _reported if q.removesuffix(".DQ").removesuffix(".XQ") in queues]:
            if queue not in found:
                del _reported[queue]
    return dict(found)


def forget() -> None:
    """Drop the cached answer of :func:`degraded_queues` (after a repair)."""
    global _cache
    _cache = None
