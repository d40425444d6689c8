"""What the shutdown and partition tests share: a plain AMQP producer, the events
the jobs of :mod:`tests.scaleout.jobs` append to files, and queue depths."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
from dramatiq.message import Message


def publish(url: str, queue: str, actor: str, calls: Iterable[Sequence[Any]]) -> list[str]:
    """Publish one message per argument list, confirmed and mandatory, as any other service would.

    Returns the message ids in order.  An unroutable message (queue not declared
    yet) raises instead of vanishing.
    """
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        ids = []
        for args in calls:
            message = Message(queue_name=queue, actor_name=actor, args=tuple(args), kwargs={}, options={})
            channel.basic_publish("", queue, message.encode(), pika.BasicProperties(delivery_mode=2),
                                  mandatory=True)
            ids.append(message.message_id)
        return ids
    finally:
        connection.close()


def ready(url: str, queue: str) -> int:
    """Messages ready (not delivered to any consumer) in ``queue``."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


@dataclass(frozen=True)
class Event:
    """One line of an events file: a job started or finished."""

    kind: str  # "start" or "done"
    message_id: str
    key: str
    pid: int
    at: float


def events(directory: Path) -> list[Event]:
    """Every event the jobs recorded in ``directory``, oldest first."""
    found = []
    for path in directory.glob("*.events"):
        for line in path.read_text().splitlines():
            kind, message_id, key, pid, at = line.split()
            found.append(Event(kind, message_id, key, int(pid), float(at)))
    return sorted(found, key=lambda e: e.at)


def tally(found: Iterable[Event], kind: str, pid: int | None = None) -> Counter[str]:
    """How many ``kind`` events each message id has (only those of ``pid`` when given)."""
    return Counter(e.message_id for e in found if e.kind == kind and (pid is None or e.pid == pid))


def purge(url: str, queue: str) -> None:
    """Drop every ready message of ``queue``, if it exists."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_purge(queue)
    except pika.exceptions.ChannelClosedByBroker:
        pass
    finally:
        connection.close()
