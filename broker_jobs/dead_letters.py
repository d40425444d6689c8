"""Dead letters: list, replay and purge what sits in the ``Q.XQ`` queues.

RabbitMQ's ``Q.XQ`` holds the dead messages themselves; the database archive
adds why each one died (reason, traceback, attempts).  Listing reads the
queues without consuming (every message is put back), replaying re-enqueues a
clean copy (retries reset) with a confirmed publish before removing the dead
one, purging removes it.  Nothing is removed before its replacement is
confirmed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pika
from dramatiq.brokers.rabbitmq import xq_name
from dramatiq.errors import DecodeError
from dramatiq.message import Message
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .broker import QUEUES, connection_url
from .errors import BrokerUnavailableError, NotFoundError
from .settings import Settings
from .store.db import get_engine
from .store.models import DeadLetter as Archived

logger = logging.getLogger(__name__)

#: Options that describe a past delivery and must not follow a replayed message.
_DELIVERY_OPTIONS = ("retries", "traceback", "requeue_timestamp", "eta", "bj_error", "bj_outcome",
                     "bj_report", "deferrals")


@dataclass
class DeadLetter:
    """One dead message, as listed by ``broker-jobs dlq list``."""

    id: str
    queue: str
    actor: str | None
    reason: str
    attempts: int
    dead_at: str | None
    args: Any = None
    kwargs: Any = None
    traceback: str | None = None
    replayed_as: str | None = None

    def asdict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass
class _Delivery:
    queue: str
    tag: int
    body: bytes
    headers: dict[str, Any]
    message: Message[Any] | None

    @property
    def id(self) -> str:
        if self.message is not None:
            return self.message.message_id
        return "raw-" + hashlib.sha1(self.body).hexdigest()[:16]


def _connect(settings: Settings) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(pika.URLParameters(connection_url(settings.rabbitmq_url)))
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailableError(f"cannot reach RabbitMQ at RABBITMQ_URL: {exc!r}") from None


def _fetch_all(channel: Any, queue: str) -> list[_Delivery]:
    deliveries: list[_Delivery] = []
    # A missing queue closes the channel it was asked on: ask on a channel of its own.
    probe = channel.connection.channel()
    try:
        declared = probe.queue_declare(queue=xq_name(queue), passive=True)
        probe.close()
    except pika.exceptions.ChannelClosedByBroker:
        return deliveries
    for _ in range(declared.method.message_count):
        method, props, body = channel.basic_get(xq_name(queue), auto_ack=False)
        if method is None:
            break
        try:
            message: Message[Any] | None = Message.decode(body)
        except DecodeError:
            message = None
        deliveries.append(_Delivery(queue, method.delivery_tag, body, dict(props.headers or {}), message))
    return deliveries


def _archive(settings: Settings, ids: Iterable[str]) -> dict[str, Archived]:
    ids = list(ids)
    if not ids:
        return {}
    with Session(get_engine(settings.database_url)) as session:
        rows = session.scalars(select(Archived).where(Archived.message_id.in_(ids)).order_by(Archived.id))
        return {row.message_id: row for row in rows}


def _death_time(headers: dict[str, Any]) -> str | None:
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths[0], dict) and deaths[0].get("time"):
        when = deaths[0]["time"]
        return when.replace(tzinfo=UTC).isoformat() if isinstance(when, datetime) else str(when)
    return None


def _describe(delivery: _Delivery, archived: Archived | None) -> DeadLetter:
    msg = delivery.message
    if msg is None:
        reason = "undecodable body: not a Dramatiq message"
    elif archived is not None:
        reason = archived.reason
    else:
        reason = "dead-lettered (no archive entry: " + str(msg.options.get("traceback", "")).strip()[-200:] + ")"
    return DeadLetter(
        id=delivery.id,
        queue=delivery.queue,
        actor=msg.actor_name if msg else None,
        reason=reason,
        attempts=archived.attempts if archived else int(msg.options.get("retries", 0)) + 1 if msg else 1,
        dead_at=archived.dead_at.isoformat() if archived and archived.dead_at else _death_time(delivery.headers),
        args=list(msg.args) if msg else None,
        kwargs=dict(msg.kwargs) if msg else None,
        traceback=archived.traceback if archived else (msg.options.get("traceback") if msg else None),
    )


Selector = Callable[[DeadLetter], bool]


def selector(id: str | None = None, actor: str | None = None) -> Selector:
    """Select dead letters by message id and/or actor."""

    def wanted(letter: DeadLetter) -> bool:
        return (id is None or letter.id == id) and (actor is None or letter.actor == actor)

    return wanted


def _queues(queue: str | None, extra: Iterable[str] = ()) -> list[str]:
    return [queue] if queue else sorted({*QUEUES, *extra})


def _known_queues() -> set[str]:
    from . import registry

    return {spec.queue for spec in registry.list()}


def list_dead(settings: Settings, *, queue: str | None = None, id: str | None = None,
              actor: str | None = None) -> list[DeadLetter]:
    """Dead letters in the ``.XQ`` queues (all queues unless ``queue``), oldest first."""
    conn = _connect(settings)
    try:
        channel = conn.channel()
        found: list[DeadLetter] = []
        for name in _queues(queue, _known_queues()):
            deliveries = _fetch_all(channel, name)
            archive = _archive(settings, (d.id for d in deliveries))
            found += [_describe(d, archive.get(d.id)) for d in deliveries]
            for d in deliveries:
                channel.basic_nack(d.tag, requeue=True)
        wanted = selector(id, actor)
        return [letter for letter in found if wanted(letter)]
    finally:
        conn.close()


def _act(settings: Settings, *, replay: bool, queue: str | None, id: str | None, actor: str | None,
         everything: bool, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None,
         ) -> list[DeadLetter]:
    if not (everything or id or actor or queue):
        raise NotFoundError("say which dead letters: --id ID, --actor A, --queue Q or --all")
    if (args is not None or kwargs is not None) and not id:
        raise NotFoundError("new arguments can only be given when replaying one dead letter (--id)")
    conn = _connect(settings)
    done: list[DeadLetter] = []
    try:
        channel = conn.channel()
        publisher = conn.channel()
        publisher.confirm_delivery()
        wanted = selector(id, actor)
        for name in _queues(queue, _known_queues()):
            deliveries = _fetch_all(channel, name)
            archive = _archive(settings, (d.id for d in deliveries))
            for delivery in deliveries:
                letter = _describe(delivery, archive.get(delivery.id))
                if not wanted(letter):
                    channel.basic_nack(delivery.tag, requeue=True)
                    continue
                if replay:
                    if delivery.message is None:
                        channel.basic_nack(delivery.tag, requeue=True)
                        raise NotFoundError(f"dead letter {letter.id} has an undecodable body: purge it instead")
                    letter.replayed_as = _republish(publisher, delivery.message, args, kwargs)
                channel.basic_ack(delivery.tag)
                done.append(letter)
        if id and not done:
            raise NotFoundError(f"no dead letter with id {id!r}")
    finally:
        conn.close()
    _mark(settings, [d.id for d in done], "replayed" if replay else "purged")
    return done


def _republish(channel: Any, message: Message[Any], args: list[Any] | None = None,
               kwargs: dict[str, Any] | None = None) -> str:
    options = {k: v for k, v in message.options.items() if k not in _DELIVERY_OPTIONS}
    queue = message.queue_name.removesuffix(".DQ").removesuffix(".XQ")
    # A new message id: the dead run keeps its history entry, the replay gets its own.
    options["replay_of"] = message.message_id
    fresh: Message[Any] = Message(queue_name=queue, actor_name=message.actor_name,
                    args=tuple(args) if args is not None else message.args,
                    kwargs=kwargs if kwargs is not None else message.kwargs, options=options)
    channel.basic_publish(
        exchange="", routing_key=queue, body=fresh.encode(),
        properties=pika.BasicProperties(delivery_mode=2, priority=options.get("broker_priority")),
        mandatory=True,
    )
    return fresh.message_id


def _mark(settings: Settings, ids: list[str], state: str) -> None:
    if not ids:
        return
    try:
        with Session(get_engine(settings.database_url)) as session:
            session.execute(update(Archived).where(Archived.message_id.in_(ids), Archived.state == "dead")
                            .values(state=state))
            session.commit()
    except SQLAlchemyError as exc:  # the queues are the truth; the archive is a record
        logger.warning("[dlq] could not mark %d archived letters %s: %s", len(ids), state, exc)


def replay(settings: Settings, *, queue: str | None = None, id: str | None = None,
           actor: str | None = None, everything: bool = False, args: list[Any] | None = None,
           kwargs: dict[str, Any] | None = None) -> list[DeadLetter]:
    """Re-enqueue the selected dead letters with retries reset (and, for one, new arguments)."""
    return _act(settings, replay=True, queue=queue, id=id, actor=actor, everything=everything,
                args=args, kwargs=kwargs)


def purge(settings: Settings, *, queue: str | None = None, id: str | None = None,
          actor: str | None = None, everything: bool = False) -> list[DeadLetter]:
    """Delete the selected dead letters for good."""
    return _act(settings, replay=False, queue=queue, id=id, actor=actor, everything=everything)
