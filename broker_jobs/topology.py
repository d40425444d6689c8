"""Queue arguments: what every queue must be declared with, and which queues differ.

A queue that someone else declared first (a plain ``RabbitmqBroker()``, another
service, a hand-made definition) may lack ``x-max-priority`` or dead-lettering.
RabbitMQ refuses to redeclare it with other arguments, so the workers and
``broker-jobs send`` use such a queue as it is (priorities are then ignored on
it), say once what is wrong and how to repair it, and the queue shows as
*degraded* in ``/health``, readiness and ``broker_jobs_queue_degraded{queue}``
until ``broker-jobs queues repair`` re-creates it (:mod:`broker_jobs.repair`).

Two queue types (``QUEUE_TYPE``): ``classic`` (one node; priorities by
``x-max-priority``) and ``quorum`` (replicated over a cluster by Raft).  Quorum
queues on RabbitMQ 3.10 refuse ``x-max-priority``, so under ``quorum`` a family
is split into priority bands, each a queue of its own, served high first (see
:func:`band_queue`); a delivery limit dead-letters a message whose workers keep
dying, and dead-lettering is at-least-once (``x-dead-letter-strategy``, which
needs ``x-overflow: reject-publish``).  Switching an existing deploy from one
type to the other shows every queue as degraded until ``broker-jobs queues
repair`` re-creates it, messages kept.

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
from .connection import QUEUES, connect
from .priorities import MAX_PRIORITY
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: The queue types of ``QUEUE_TYPE``.
CLASSIC, QUORUM = "classic", "quorum"
#: Quorum queues: the bands of a family's high and low jobs (medium, and messages without a priority, stay in
#: ``Q``); named like Dramatiq's ``.DQ`` and ``.XQ``.  They share the family's ``.DQ`` and ``.XQ``.
HIGH_BAND, LOW_BAND = ".HQ", ".LQ"
#: The AMQP priorities (``broker_priority``) that go to the high band (at least) and the low band (1 to this).
HIGH_FROM, LOW_UP_TO = 7, 3
#: The delivery limit of a quorum queue unless ``QUORUM_DELIVERY_LIMIT`` says otherwise.
DELIVERY_LIMIT = 20

_CONFLICT = re.compile(r"inequivalent arg '([^']+)' for queue '([^']+)'")


@dataclass(frozen=True)
class QueueConflict:
    """A queue that exists on RabbitMQ with arguments other than ours.

    Parameters:
      queue: The queue (``Q``, ``Q.DQ`` or ``Q.XQ``).
      argument: The argument that differs (for example ``x-max-priority``).
      detail: RabbitMQ's own explanation.
      wanted_type: The ``QUEUE_TYPE`` it was checked against.
    """

    queue: str
    argument: str
    detail: str
    wanted_type: str = CLASSIC

    @property
    def canonical(self) -> str:
        """The queue's family name (``default`` for ``default.DQ``)."""
        return canonical(self.queue, QUORUM)

    def warning(self) -> str:
        """One line: what is wrong, what it costs and the command that repairs it."""
        if self.wanted_type == QUORUM:
            cost = "it is not the quorum queue QUEUE_TYPE=quorum asks for"
        elif self.argument == "x-max-priority":
            cost = "message priorities are ignored on it"
        else:
            cost = "without the arguments QUEUE_TYPE=classic asks for"
        return (f"queue {self.queue!r} exists on RabbitMQ with a different {self.argument!r} ({self.detail}); "
                f"using it as it is ({cost}) until you run: "
                f"broker-jobs queues repair {self.canonical}")


def conflict_from(exc: BaseException, queue: str, wanted_type: str = CLASSIC) -> QueueConflict | None:
    """The :class:`QueueConflict` a 406 PRECONDITION_FAILED describes, else None."""
    if getattr(exc, "reply_code", None) != 406:
        return None
    text = str(getattr(exc, "reply_text", exc))
    if "inequivalent arg" not in text:
        return None
    match = _CONFLICT.search(text)
    argument, name = (match.group(1), match.group(2)) if match else ("arguments", queue)
    return QueueConflict(name, argument, text.split(" - ", 1)[-1], wanted_type)


def canonical(queue: str, queue_type: str = CLASSIC) -> str:
    """The family name of ``queue``: without ``.DQ``/``.XQ`` (and, for quorum queues, a band's suffix)."""
    suffixes = (".DQ", ".XQ", HIGH_BAND, LOW_BAND) if queue_type == QUORUM else (".DQ", ".XQ")
    for suffix in suffixes:
        if queue.endswith(suffix):
            return queue[: -len(suffix)]
    return queue


def is_band(queue: str) -> bool:
    """Whether ``queue`` is the high or low band of a quorum family."""
    return queue.endswith((HIGH_BAND, LOW_BAND))


def bands(family_name: str) -> tuple[str, str, str]:
    """The bands of a quorum family, served in this order: ``Q.HQ``, ``Q``, ``Q.LQ``."""
    return f"{family_name}{HIGH_BAND}", family_name, f"{family_name}{LOW_BAND}"


def band_queue(family_name: str, priority: int | None) -> str:
    """The band of a quorum family a message of AMQP ``priority`` goes to (none or 0: ``Q``, with medium)."""
    if priority is not None and priority >= HIGH_FROM:
        return f"{family_name}{HIGH_BAND}"
    if priority is not None and 1 <= priority <= LOW_UP_TO:
        return f"{family_name}{LOW_BAND}"
    return family_name


def band_above(queue: str) -> str | None:
    """The band served before ``queue`` (``Q.HQ`` for ``Q``, ``Q`` for ``Q.LQ``); None for a high band and for
    a delay or dead-letter queue."""
    if queue.endswith((HIGH_BAND, ".DQ", ".XQ")):
        return None
    if queue.endswith(LOW_BAND):
        return queue.removesuffix(LOW_BAND)
    return f"{queue}{HIGH_BAND}"


def band_rank(queue: str) -> int:
    """0 for a high band, 2 for a low band, 1 otherwise: the order a worker runs what it holds."""
    return 0 if queue.endswith(HIGH_BAND) else 2 if queue.endswith(LOW_BAND) else 1


def wanted_arguments(queue: str, max_priority: int | None = None, queue_type: str = CLASSIC,
                     delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
    """The arguments ``queue`` is declared with (``Q``, ``Q.DQ``, ``Q.XQ``, a band, a repair's holding queue).

    Classic: Dramatiq's, ``x-max-priority`` included.  Quorum: ``x-queue-type``, the
    delivery limit and at-least-once dead-lettering (no priority: quorum queues refuse it).
    """
    if queue_type == QUORUM:
        if queue.endswith(".repair"):
            return {"x-queue-type": QUORUM}
        if queue.endswith(".XQ"):
            return {"x-queue-type": QUORUM, "x-message-ttl": DEAD_MESSAGE_TTL}
        return {"x-queue-type": QUORUM, "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": f"{canonical(queue, QUORUM)}.XQ",
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
                "x-delivery-limit": delivery_limit}
    if queue.endswith(".repair"):
        return {}
    if queue.endswith(".XQ"):
        return {"x-message-ttl": DEAD_MESSAGE_TTL}
    family_name = queue.removesuffix(".DQ")
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{family_name}.XQ",
            "x-max-priority": MAX_PRIORITY if max_priority is None else max_priority}


def arguments_for(queue: str, settings: Settings) -> dict[str, Any]:
    """:func:`wanted_arguments` of ``queue`` under ``settings`` (``QUEUE_TYPE``, ``QUORUM_DELIVERY_LIMIT``)."""
    return wanted_arguments(queue, queue_type=settings.queue_type, delivery_limit=settings.quorum_delivery_limit)


def family(canonical_name: str, queue_type: str = CLASSIC) -> tuple[str, ...]:
    """The queues declared for a family: ``Q``, ``Q.DQ``, ``Q.XQ`` (quorum: also ``Q.HQ`` and ``Q.LQ``)."""
    if queue_type == QUORUM:
        return (canonical_name, f"{canonical_name}{HIGH_BAND}", f"{canonical_name}{LOW_BAND}",
                f"{canonical_name}.DQ", f"{canonical_name}.XQ")
    return canonical_name, f"{canonical_name}.DQ", f"{canonical_name}.XQ"


def check_queue(connection: pika.BlockingConnection, queue: str,
                arguments: dict[str, Any] | None = None) -> QueueConflict | None:
    """Whether the existing ``queue`` differs from ``arguments`` (default: classic :func:`wanted_arguments`);
    None: same, or absent.

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
        channel.queue_declare(queue, durable=True, arguments=wanted_arguments(queue) if arguments is None
                              else arguments)
    except pika.exceptions.ChannelClosedByBroker as exc:
        conflict = conflict_from(exc, queue, str((arguments or {}).get("x-queue-type", CLASSIC)))
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
    key = f"{settings.amqp_urls}|{settings.queue_type}|{','.join(queues)}"
    cached = _cache
    if cached is not None and cached[1] == key and time.monotonic() - cached[0] < max_age:
        return dict(cached[2])
    connection = connect(settings.amqp_urls, stack_timeout=timeout, connection_attempts="1",
                         socket_timeout=str(timeout), blocked_connection_timeout=str(timeout))
    found: dict[str, str] = {}
    try:
        for name in queues:
            for queue in family(name, settings.queue_type):
                conflict = check_queue(connection, queue, arguments_for(queue, settings))
                if conflict is not None:
                    found[queue] = conflict.warning()
    finally:
        if connection.is_open:
            connection.close()
    _cache = (time.monotonic(), key, found)
    with _lock:  # what is right now was repaired: a later conflict is worth a new warning
        for queue in [q for q in _reported if canonical(q, settings.queue_type) in queues]:
            if queue not in found:
                del _reported[queue]
    return dict(found)


def forget() -> None:
    """Drop the cached answer of :func:`degraded_queues` (after a repair)."""
    global _cache
    _cache = None
