"""``broker-jobs queues repair``: re-create a queue declared with other arguments, losing no message.

RabbitMQ cannot change a queue's arguments: the queue must be deleted and
declared again.  For each queue of the family (``Q``, ``Q.DQ``, ``Q.XQ``) whose
arguments differ from ours:

1. declare a holding queue ``<queue>.repair`` (durable, no arguments);
2. move every message from the queue into it: ``basic_get``, publish the same body
   and properties with publisher confirms (``mandatory``), and only then ack the
   original.  Interrupted at any point, the original is still in the queue
   (RabbitMQ requeues an unacked ``basic_get``); at worst a message is in both
   queues, under the same message id, never in neither;
3. delete the queue only if it is empty (``if-empty``); a message published
   meanwhile makes RabbitMQ refuse, and step 2 runs again;
4. declare the queue with the right arguments;
5. move every message from the holding queue back the same way, then delete the
   holding queue if it is empty.

Running the command again after an interruption finishes the job: a queue whose
arguments are right is left alone, and a holding queue that still has messages
is always drained back (step 5).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import pika

from . import topology
from .connection import connect
from .errors import BrokerUnavailableError, NotFoundError
from .progress import SILENT, Progress
from .settings import Settings

logger = logging.getLogger(__name__)

#: Suffix of the holding queue of a repair.
HOLDING = ".repair"
_DELETE_TRIES = 20


@dataclass
class Repaired:
    """What the repair did to one queue."""

    queue: str
    conflict: str | None
    moved_out: int
    moved_back: int
    arguments: dict[str, Any] | None = None

    def asdict(self) -> dict[str, Any]:
        """JSON-ready fields (the arguments are in :meth:`line`)."""
        fields = asdict(self)
        del fields["arguments"]
        return fields

    def line(self) -> str:
        """One line for the operator."""
        if self.conflict is None and not self.moved_back:
            return f"{self.queue}: arguments already right, nothing to do"
        if self.conflict is None:
            return f"{self.queue}: arguments already right; {self.moved_back} message(s) moved back from " \
                   f"{self.queue}{HOLDING} (an earlier repair was interrupted)"
        arguments = self.arguments if self.arguments is not None else topology.wanted_arguments(self.queue)
        return (f"{self.queue}: re-created with {arguments}; "
                f"{self.moved_out} message(s) moved out and {self.moved_back} back, each confirmed")


class _Session:
    """One connection; a fresh confirming channel whenever RabbitMQ closed the last one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            self.connection = connect(settings.amqp_urls)
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailableError(f"cannot reach RabbitMQ at RABBITMQ_URL: {exc!r}") from None
        self._channel: Any = None

    @property
    def channel(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self._channel = self.connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def fresh_channel(self) -> None:
        """Close the channel: the next use opens a new one.

        A channel that used a queue keeps its state under the queue's name; RabbitMQ
        3.10 crashes the channel (541 INTERNAL_ERROR) when it then publishes to a queue
        of another type re-created under that name (classic to quorum).
        """
        if self._channel is not None and self._channel.is_open:
            self._channel.close()
        self._channel = None

    def exists(self, queue: str) -> bool:
        try:
            self.channel.queue_declare(queue, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False

    def move(self, source: str, target: str, progress: Progress = SILENT) -> int:
        """Move every ready message of ``source`` to ``target``, each confirmed before its original is acked."""
        moved = 0
        channel = self.channel
        progress.found(channel.queue_declare(source, passive=True).method.message_count)
        while True:
            method, properties, body = channel.basic_get(source, auto_ack=False)
            if method is None:
                return moved
            channel.basic_publish("", target, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1
            progress.done()

    def delete_if_empty(self, queue: str, quorum: bool = False) -> bool:
        """Delete ``queue`` if it has no ready message.

        Quorum queues refuse ``if-empty`` (RabbitMQ 3.10 closes the connection): the
        count is read first, so a message published between the count and the delete
        would go with the queue; stop its senders first (the README says so).
        """
        if quorum:
            if self.channel.queue_declare(queue, passive=True).method.message_count:
                return False
            self.channel.queue_delete(queue)
            return True
        try:
            self.channel.queue_delete(queue, if_empty=True)
            return True
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:
                raise
            return False

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


def repair_queue(session: _Session, queue: str, progress: Progress = SILENT) -> Repaired:
    """Run the documented procedure on one queue (``Q``, ``Q.DQ`` or ``Q.XQ``)."""
    holding = queue + HOLDING
    settings = session.settings
    conflict = topology.check_queue(session.connection, queue, topology.arguments_for(queue, settings))
    moved_out = 0
    if conflict is not None:
        logger.warning("[repair] %s: %s", queue, conflict.detail)
        session.channel.queue_declare(holding, durable=True, arguments=topology.arguments_for(holding, settings))
        for _ in range(_DELETE_TRIES):
            moved_out += session.move(queue, holding, progress)
            # A quorum queue being made classic again cannot be deleted "if empty".
            if session.delete_if_empty(queue, quorum=conflict.argument == "x-queue-type"
                                       and settings.queue_type != topology.QUORUM):
                break
        else:
            raise BrokerUnavailableError(f"queue {queue!r}: still receiving messages after {_DELETE_TRIES} "
                                         f"moves; stop its senders and run the repair again")
    # Declared right (a no-op when it already is); a 406 here means someone re-created it wrong.
    if conflict is not None:
        session.fresh_channel()
    session.channel.queue_declare(queue, durable=True, arguments=topology.arguments_for(queue, settings))
    moved_back = 0
    if session.exists(holding):
        moved_back = session.move(holding, queue, progress)
        session.delete_if_empty(holding, quorum=settings.queue_type == topology.QUORUM)
    return Repaired(queue, conflict.warning() if conflict else None, moved_out, moved_back,
                    topology.arguments_for(queue, settings))


def repair_queues(settings: Settings, names: list[str] | None = None, progress: Progress = SILENT) -> list[Repaired]:
    """Repair ``names`` (canonical, ``.DQ`` or ``.XQ`` names; default: every degraded queue).

    Parameters:
      settings: The settings (``RABBITMQ_URL``).
      names: Queues to repair; each name stands for its whole family.

    Raises:
      NotFoundError: a named queue does not exist (checked before anything is moved).
    """
    if names:
        families = sorted({topology.canonical(n.removesuffix(HOLDING), settings.queue_type) for n in names})
    else:
        families = sorted({topology.canonical(q, settings.queue_type)
                           for q in topology.degraded_queues(settings, max_age=0)})
    session = _Session(settings)
    try:
        missing = [name for name in families if not (session.exists(name) or session.exists(name + HOLDING))]
        if names and missing:  # a typo: say so before touching anything
            raise NotFoundError(f"queue {missing[0]!r} does not exist on RabbitMQ (nothing repaired)")
        done = []
        for canonical in families:
            for queue in topology.family(canonical, settings.queue_type):
                differs = topology.check_queue(session.connection, queue, topology.arguments_for(queue, settings))
                if differs is not None or session.exists(queue + HOLDING):
                    done.append(repair_queue(session, queue, progress))
                elif queue == canonical:
                    done.append(Repaired(queue, None, 0, 0))
        return done
    finally:
        session.close()
        topology.forget()
