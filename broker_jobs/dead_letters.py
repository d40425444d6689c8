"""Dead letters: list, replay and purge what sits in the ``Q.XQ`` queues.

RabbitMQ's ``Q.XQ`` holds the dead messages themselves; the database archive
adds why each one died (reason, traceback, attempts).  Listing reads the
queues without consuming (every message is put back), replaying re-enqueues a
clean copy (retries reset) with a confirmed publish before removing the dead
one, purging removes it.  Nothing is removed before its replacement is
confirmed.

Any stored letter lists: its body is read with the workers' own check
(:func:`broker_jobs.wire.parse`), and one that is not a well-formed message,
or whose replay would be over ``MAX_MESSAGE_BYTES``, is shown with why it
cannot be replayed (``not_replayable``) and skipped by a replay, which says so
instead of stopping half-way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pika
from dramatiq.common import xq_name
from dramatiq.message import Message
from sqlalchemy.exc import SQLAlchemyError

from . import publishing, registry, topology, wire
from .connection import QUEUES, connect
from .errors import BrokerUnavailableError, MessageTooLarge, NotFoundError
from .progress import SILENT, Progress
from .protocol import BROKER_PRIORITY, DELIVERY_OPTIONS, REPLAY_OF
from .settings import Settings
from .store.db import get_engine
from .store.queries import archived_letters, mark_archived

if TYPE_CHECKING:
    from sqlalchemy import Row

logger = logging.getLogger(__name__)

#: Options that describe a past delivery and must not follow a replayed message.
_DELIVERY_OPTIONS = DELIVERY_OPTIONS


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
    not_replayable: str | None = None

    def asdict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass
class ReplayResult:
    """What a replay did: the letters replayed (each with ``replayed_as``) and those skipped
    (each with ``not_replayable``), which stay in the dead-letter queue."""

    replayed: list[DeadLetter] = field(default_factory=list)
    skipped: list[DeadLetter] = field(default_factory=list)

    def asdict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"replayed": [d.asdict() for d in self.replayed], "skipped": [d.asdict() for d in self.skipped]}


@dataclass
class _Delivery:
    queue: str
    tag: int
    body: bytes
    headers: dict[str, Any]
    parsed: Message[Any] | wire.Malformed

    @property
    def message(self) -> Message[Any] | None:
        return None if isinstance(self.parsed, wire.Malformed) else self.parsed

    @property
    def id(self) -> str:
        return self.parsed.id if isinstance(self.parsed, wire.Malformed) else self.parsed.message_id


def _connect(settings: Settings) -> pika.BlockingConnection:
    try:
        return connect(settings.amqp_urls)
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
        headers = props.headers if isinstance(props.headers, dict) else {}
        deliveries.append(_Delivery(queue, method.delivery_tag, body, headers, wire.parse(body)))
    return deliveries


def _archive(settings: Settings, ids: Iterable[str]) -> dict[str, Row[Any]]:
    return archived_letters(get_engine(settings.database_url), ids)


def _death_time(headers: dict[str, Any]) -> str | None:
    deaths = headers.get("x-death") or []
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) and deaths[0].get("time"):
        when = deaths[0]["time"]
        return when.replace(tzinfo=UTC).isoformat() if isinstance(when, datetime) else str(when)
    return None


def _json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` as strict JSON can carry it (a stored body may hold NaN or deep nesting)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if depth >= 32 and isinstance(value, list | dict):
        return "..."
    if isinstance(value, list):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    return value


def _describe(delivery: _Delivery, archived: Row[Any] | None) -> DeadLetter:
    parsed = delivery.parsed
    if isinstance(parsed, wire.Malformed):
        fields = parsed.fields or {}
        return DeadLetter(
            id=parsed.id, queue=delivery.queue, actor=parsed.actor,
            reason=archived.reason if archived is not None else parsed.reason,
            attempts=archived.attempts if archived is not None else 1,
            dead_at=archived.dead_at.isoformat() if archived and archived.dead_at else _death_time(delivery.headers),
            args=_json_safe(fields.get("args")), kwargs=_json_safe(fields.get("kwargs")),
            traceback=archived.traceback if archived is not None else None,
            not_replayable=parsed.reason,
        )
    msg = parsed
    if archived is not None:
        reason = archived.reason
    else:
        reason = "dead-lettered (no archive entry: " + str(msg.options.get("traceback", "")).strip()[-200:] + ")"
    traceback = msg.options.get("traceback")
    return DeadLetter(
        id=msg.message_id,
        queue=delivery.queue,
        actor=msg.actor_name,
        reason=reason,
        attempts=archived.attempts if archived else int(msg.options.get("retries", 0)) + 1,
        dead_at=archived.dead_at.isoformat() if archived and archived.dead_at else _death_time(delivery.headers),
        args=_json_safe(list(msg.args)),
        kwargs=_json_safe(dict(msg.kwargs)),
        traceback=archived.traceback if archived else (traceback if isinstance(traceback, str) else None),
    )


Selector = Callable[[DeadLetter], bool]


def selector(id: str | None = None, actor: str | None = None, ids: Iterable[str] | None = None) -> Selector:
    """Select dead letters by message id (one, or any of ``ids``) and/or actor."""
    chosen = None if ids is None else frozenset(ids)

    def wanted(letter: DeadLetter) -> bool:
        return ((id is None or letter.id == id) and (actor is None or letter.actor == actor)
                and (chosen is None or letter.id in chosen))

    return wanted


def _queues(queue: str | None, extra: Iterable[str] = ()) -> list[str]:
    return [queue] if queue else sorted({*QUEUES, *extra})


def _known_queues() -> set[str]:
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
         ids: Iterable[str] | None = None, progress: Progress = SILENT) -> ReplayResult:
    if not (everything or id or actor or queue or ids):
        raise NotFoundError("say which dead letters: --id ID, --actor A, --queue Q or --all")
    if (args is not None or kwargs is not None) and not id:
        raise NotFoundError("new arguments can only be given when replaying one dead letter (--id)")
    conn = _connect(settings)
    result = ReplayResult()
    try:
        channel = conn.channel()
        publisher = conn.channel()
        publisher.confirm_delivery()
        wanted = selector(id, actor, ids)
        for name in _queues(queue, _known_queues()):
            deliveries = _fetch_all(channel, name)
            archive = _archive(settings, (d.id for d in deliveries))
            progress.found(len(deliveries))
            for delivery in deliveries:
                progress.done()
                letter = _describe(delivery, archive.get(delivery.id))
                if not wanted(letter):
                    channel.basic_nack(delivery.tag, requeue=True)
                    continue
                if replay:
                    message = delivery.message
                    if message is not None:
                        try:
                            letter.replayed_as = _republish(publisher, name, message,
                                                            settings.max_message_bytes, args, kwargs,
                                                            queue_type=settings.queue_type)
                        except MessageTooLarge as exc:
                            letter.not_replayable = str(exc)
                    if letter.replayed_as is None:  # malformed or too large: it stays dead
                        channel.basic_nack(delivery.tag, requeue=True)
                        result.skipped.append(letter)
                        continue
                channel.basic_ack(delivery.tag)
                result.replayed.append(letter)
    finally:
        # Whatever stopped the run (RabbitMQ gone mid-way), what was done is recorded.
        if conn.is_open:
            conn.close()
        _mark(settings, [d.id for d in result.replayed], "replayed" if replay else "purged")
    if id and not (result.replayed or result.skipped):
        raise NotFoundError(f"no dead letter with id {id!r}")
    return result


def _republish(channel: Any, queue: str, message: Message[Any], max_bytes: int,
               args: list[Any] | None = None, kwargs: dict[str, Any] | None = None, *,
               queue_type: str = topology.CLASSIC) -> str:
    """Publish a clean copy of ``message`` on ``queue`` (the one whose ``.XQ`` held it; with quorum
    queues, its band by priority)."""
    options = {k: v for k, v in message.options.items() if k not in _DELIVERY_OPTIONS}
    if queue_type == topology.QUORUM:
        queue = topology.band_queue(queue, options.get(BROKER_PRIORITY))
    # A new message id: the dead run keeps its history entry, the replay gets its own.
    options[REPLAY_OF] = message.message_id
    fresh: Message[Any] = Message(queue_name=queue, actor_name=message.actor_name,
                    args=tuple(args) if args is not None else message.args,
                    kwargs=kwargs if kwargs is not None else message.kwargs, options=options)
    publishing.publish(channel, queue, fresh.encode(), options.get(BROKER_PRIORITY), actor=message.actor_name,
                       max_bytes=max_bytes, mandatory=True)
    return fresh.message_id


def _mark(settings: Settings, ids: list[str], state: str) -> None:
    if not ids:
        return
    try:
        mark_archived(get_engine(settings.database_url), ids, state)
    except SQLAlchemyError as exc:  # the queues are the truth; the archive is a record
        logger.warning("[dlq] could not mark %d archived letters %s: %s", len(ids), state, exc)


def replay(settings: Settings, *, queue: str | None = None, id: str | None = None,
           actor: str | None = None, everything: bool = False, args: list[Any] | None = None,
           kwargs: dict[str, Any] | None = None, ids: Iterable[str] | None = None,
           progress: Progress = SILENT) -> ReplayResult:
    """Re-enqueue the selected dead letters with retries reset (and, for one, new arguments).

    ``ids`` selects a set of letters by message id (the console's selection); ``progress`` hears of each
    dead letter looked at.

    A letter that is not a well-formed message, or whose replay would be over
    ``MAX_MESSAGE_BYTES``, is skipped and stays dead; the result lists it with why.
    """
    return _act(settings, replay=True, queue=queue, id=id, actor=actor, everything=everything,
                args=args, kwargs=kwargs, ids=ids, progress=progress)


def purge(settings: Settings, *, queue: str | None = None, id: str | None = None,
          actor: str | None = None, everything: bool = False, ids: Iterable[str] | None = None,
          progress: Progress = SILENT) -> list[DeadLetter]:
    """Delete the selected dead letters for good (``ids``: a set of them by message id)."""
    return _act(settings, replay=False, queue=queue, id=id, actor=actor, everything=everything, ids=ids,
                progress=progress).replayed
