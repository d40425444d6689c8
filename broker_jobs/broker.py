"""The one place that builds the broker and its middleware stack.

Middleware order (each hook runs top to bottom before, bottom to top after):

0. :class:`~broker_jobs.middleware.heap.HeapFreeze` (real broker only): once the worker
   process has booted (its after hook runs last), the start-up objects are frozen out of
   the garbage collector's walks.  Dramatiq's ``Prometheus``
   (:func:`~broker_jobs.middleware.metrics.prometheus_middleware`, real broker only):
   Dramatiq's metrics, exported by the worker master on ``METRICS_PORT``, and
   :class:`~broker_jobs.middleware.heartbeat.WorkerHeartbeat`: each worker process's
   state for the ``/health/live`` and ``/health/ready`` probes on that port.
1. ``AgeLimit``, ``TimeLimit`` (``JOB_TIMEOUT`` unless the job sets its own),
   ``ShutdownNotifications``, ``Callbacks``, ``Pipelines``, ``CurrentMessage``:
   Dramatiq's own.
2. :class:`~broker_jobs.middleware.PriorityTagging`: every message gets an AMQP
   priority on enqueue; :class:`~broker_jobs.middleware.MessageSizeLimit`: a
   message over ``MAX_MESSAGE_BYTES`` is refused with one clear error.
3. :class:`~broker_jobs.middleware.JobRetries`: unknown actors and permanent
   errors are dead-lettered at once, the rest retried with backoff.
4. :class:`~broker_jobs.middleware.FireDedup`: a second message of one schedule
   slot is dropped.
5. :class:`~broker_jobs.middleware.RateLimit`: over-limit jobs are delayed, not failed (the job's own
   ``rate_limit`` and the jobs file's ``rate_limits:`` per queue or group, read at worker boot).
6. :class:`~broker_jobs.middleware.metrics.JobMetrics` (our counters, failed-job
   alerts) and :class:`~broker_jobs.middleware.History`: records what really happened
   (after dedup and rate limits, so skipped deliveries never show as running).
7. :class:`TopologyGuard`: before a worker starts, every queue is declared; a
   queue that exists with other arguments is used as it is, with one warning
   naming the repair command (:mod:`broker_jobs.topology`).  With quorum queues
   it also has the worker consume every priority band of its queues and run
   what it holds high band first (:class:`BandedWorkQueue`).
8. :class:`~broker_jobs.middleware.job_modules.JobModules` (real broker only): a
   worker process imports the jobs file's ``modules:`` at boot.
9. :class:`~broker_jobs.middleware.presence.WorkerPresence` (real broker only): each
   worker process's heartbeat (host, pid, queues, threads, current jobs, version)
   in the database, for the console's workers view.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from queue import PriorityQueue
from typing import Any

import dramatiq
import pika
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import MAX_DECLARE_ATTEMPTS, MAX_ENQUEUE_ATTEMPTS, RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    MiddlewareError,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)
from dramatiq.rate_limits import RateLimiterBackend
from dramatiq.rate_limits.backends import StubBackend

from . import compat, publishing, topology
from .connection import QUEUES, connection_url
from .consumer import CheckingConsumer
from .errors import PublishBlocked
from .host_limits import HostBackend
from .middleware import FireDedup, History, JobRetries, MessageSizeLimit, PriorityTagging, RateLimit
from .middleware.heap import HeapFreeze
from .middleware.heartbeat import WorkerHeartbeat
from .middleware.job_modules import JobModules
from .middleware.metrics import JobMetrics, prometheus_middleware
from .middleware.presence import WorkerPresence
from .priorities import MAX_PRIORITY
from .protocol import BJ_ETA, BROKER_PRIORITY, ETA
from .settings import Settings, get_settings
from .store.history import writer as history_writer
from .topology import CLASSIC, QUORUM

logger = logging.getLogger(__name__)

compat.install()


def _prime(message: Any) -> None:
    """Copy the proxied fields of a delivery onto its proxy.

    Dramatiq's ``MessageProxy`` forwards each attribute read through ``__getattr__``,
    a Python call: our stack reads about 35 per message.  The message behind is a
    frozen dataclass (its ``options`` dict is shared, not copied), so plain attributes
    on the proxy stay equal to it.
    """
    if isinstance(message, MessageProxy):
        fields, inner = message.__dict__, message._message
        fields["queue_name"], fields["actor_name"], fields["message_id"] = (
            inner.queue_name, inner.actor_name, inner.message_id)
        fields["options"], fields["args"], fields["kwargs"] = inner.options, inner.args, inner.kwargs
        fields["message_timestamp"] = inner.message_timestamp


class BandGate:
    """Holds each priority band's consumer, when a worker starts, until the band above it has answered once.

    A worker consumes a quorum family's bands side by side, each on a connection of its
    own.  Started together, the low band's consumer may be served first (its connection
    was quicker) and the worker would run low jobs while a high one waits in ``Q.HQ``.
    So ``Q``'s consumer starts consuming only once ``Q.HQ``'s first answer (a message, or
    nothing within the worker timeout) is in, and ``Q.LQ``'s once ``Q``'s is; after
    ``max_wait`` seconds a band starts anyway (the band above cannot connect).  Open
    once, a band stays open (a consumer restarted after a connection loss does not wait).

    Parameters:
      max_wait: The longest a band's consumer waits for the band above.
    """

    def __init__(self, max_wait: float = 5.0) -> None:
        self.max_wait = max_wait
        self._answered: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, queue: str) -> threading.Event:
        with self._lock:
            return self._answered.setdefault(queue, threading.Event())

    def answered(self, queue: str) -> None:
        """``queue``'s consumer has had its first answer: the band below may start."""
        self._event(queue).set()

    def is_open(self, queue: str) -> bool:
        """Whether ``queue``'s consumer may consume (the band above has answered, or there is none)."""
        above = topology.band_above(queue)
        return above is None or self._event(above).is_set()

    def wait(self, queue: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the band above ``queue`` to answer; whether it did."""
        above = topology.band_above(queue)
        return above is None or self._event(above).wait(timeout)


class _DeliveryConsumer(CheckingConsumer):
    """The checking consumer, keeping each delivery's AMQP priority on its message.

    Dramatiq drops the delivery's properties; the history must record the priority
    RabbitMQ really served the message with (none at all for a foreign sender that
    set none), and a retry must keep it, so it lands in ``amqp_priority`` on the
    proxy and, when the body does not say, in the ``broker_priority`` option.

    With quorum queues it waits at the :class:`BandGate` before it consumes: until then
    it answers "nothing" (as after an idle worker timeout), so its thread still sees a
    shutdown.
    """

    def __init__(self, broker: Any, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self._properties: Any = None
        self.iterator = self._remember(self.iterator)
        self._gate: BandGate | None = getattr(broker, "band_gate", None)
        self._gate_deadline = time.monotonic() + (self._gate.max_wait if self._gate is not None else 0)
        self._idle = timeout / 1000

    def _remember(self, deliveries: Any) -> Any:
        for method, properties, body in deliveries:
            self._properties = properties
            yield method, properties, body

    def _held_at_gate(self, gate: BandGate) -> bool:
        # Before the first consume only: RabbitMQ delivers nothing to a consumer that has not consumed yet.
        if gate.is_open(self.queue_name) or time.monotonic() >= self._gate_deadline:
            return False
        return not gate.wait(self.queue_name, min(self._idle, max(0.0, self._gate_deadline - time.monotonic())))

    def __next__(self) -> Any:
        gate = self._gate
        if gate is not None:
            if self._held_at_gate(gate):
                return None
            message = super().__next__()
            gate.answered(self.queue_name)
            self._gate = None
        else:
            message = super().__next__()
        if message is not None:
            priority = getattr(self._properties, "priority", None)
            message.__dict__["amqp_priority"] = priority
            if priority is not None and BROKER_PRIORITY not in message.options:
                message.options[BROKER_PRIORITY] = priority
        return message


class JobsBroker(RabbitmqBroker):
    """RabbitMQ broker that works on a queue declared with other arguments, keeps
    each delivery's real AMQP priority, and never lets a delayed message sit
    unacked past RabbitMQ's consumer timeout.

    Dramatiq's delay consumer holds a delayed message unacked in memory until it
    is due; RabbitMQ closes a channel holding a delivery longer than its
    ``consumer_timeout`` and redelivers, so a long delay would run twice.  A
    delay longer than ``max_hold_ms`` is split into hops: the message carries its
    real due time in ``bj_eta`` and goes back to the delay queue until then.  The
    worker applies the same limit to what it receives, so a message delayed by a
    producer that does not know the consumer timeout (another service, plain
    Dramatiq) hops as well.

    Every delivery is checked whole before dispatch (:mod:`broker_jobs.wire`,
    :class:`~broker_jobs.consumer.CheckingConsumer`): a malformed one is archived
    and dead-lettered by the consumer thread.

    With ``queue_type="quorum"`` every queue is a quorum queue (:mod:`broker_jobs.topology`),
    and a family ``Q`` is split into priority bands: a message is published to
    ``Q.HQ``, ``Q`` or ``Q.LQ`` by its ``broker_priority`` (the body names that
    queue, as Dramatiq's consumers need), delayed ones to the family's ``Q.DQ``,
    and all of them dead-letter into ``Q.XQ``.

    Parameters:
      max_hold_ms: The longest a delayed message may be held (half the consumer timeout).
      max_message_bytes: ``MAX_MESSAGE_BYTES``: larger deliveries are dead-lettered.
      queue_type: ``QUEUE_TYPE``: ``classic`` or ``quorum``.
      delivery_limit: ``QUORUM_DELIVERY_LIMIT`` (quorum queues only).
    """

    def __init__(self, *args: Any, max_hold_ms: int = 900_000, max_message_bytes: int | None = None,
                 queue_type: str = CLASSIC, delivery_limit: int = topology.DELIVERY_LIMIT, **kwargs: Any) -> None:
        self._hooks: dict[str, tuple[int, list[Any]]] = {}
        super().__init__(*args, **kwargs)
        self.max_hold_ms = max_hold_ms
        self.max_message_bytes = max_message_bytes
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit
        #: Quorum queues: each band's consumer waits for the band above at a worker's start.
        self.band_gate: BandGate | None = BandGate() if queue_type == QUORUM else None

    @property
    def quorum(self) -> bool:
        """Whether the queues are quorum queues (split into priority bands)."""
        return self.queue_type == QUORUM

    def declare_queue(self, queue_name: str, *, ensure: bool = False) -> None:
        """Dramatiq's ``declare_queue``; with quorum queues, a family's bands are declared with it.

        A band is a queue of its own for the worker (a consumer each) but has no
        delay queue of its own: its delays and dead letters go through the family's.
        """
        if not self.quorum:
            super().declare_queue(queue_name, ensure=ensure)
            return
        family_name = topology.canonical(queue_name, QUORUM)
        if family_name not in self.queues:
            super().declare_queue(family_name)
            for band in topology.bands(family_name):
                if band not in self.queues:
                    self.emit_before("declare_queue", band)
                    self.queues.add(band)
                    self.emit_after("declare_queue", band)
        if ensure:
            self._ensure_queue(family_name)

    @property
    def consumer_class(self) -> Any:
        return _DeliveryConsumer

    def add_middleware(self, middleware: dramatiq.Middleware, **kwargs: Any) -> None:
        self._hooks.clear()
        super().add_middleware(middleware, **kwargs)

    def _hook(self, name: str) -> list[Any]:
        """The bound ``name`` hooks of the middleware that implement it, in stack order.

        Dramatiq calls every hook of every middleware for every signal, most of them
        the base class's no-ops: about ten signals per message times our 17 middleware.
        The list is rebuilt when the stack changes (``add_middleware`` or a change in
        its length).
        """
        cached = self._hooks.get(name)
        if cached is None or cached[0] != len(self.middleware):
            noop = getattr(dramatiq.Middleware, name, None)
            hooks = [getattr(m, name) for m in self.middleware
                     if noop is None or getattr(type(m), name, None) is not noop]
            cached = self._hooks[name] = (len(self.middleware), hooks)
        return cached[1]

    @property
    def connection(self) -> Any:
        return RabbitmqBroker.connection.fget(self)  # type: ignore[attr-defined]  # an unannotated property

    @connection.deleter
    def connection(self) -> None:
        # Dramatiq drops the connection inside its ``except`` after a failed publish:
        # the exception being handled says whether RabbitMQ was blocking publishers.
        if isinstance(sys.exc_info()[1], pika.exceptions.ConnectionBlockedTimeout):
            self.state.blocked = True
        RabbitmqBroker.connection.fdel(self)  # type: ignore[attr-defined]  # an unannotated property

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        # Dramatiq retries a publish that timed out on a blocked connection up to
        # six times, each waiting the full blocked-connection timeout: report the
        # alarm after the first wait instead.
        if signal == "enqueue" and getattr(self.state, "blocked", False):
            self.state.blocked = False
            params = self.parameters[0] if isinstance(self.parameters, list) else self.parameters
            raise PublishBlocked(
                "RabbitMQ is blocking publishers (memory or disk alarm): message not enqueued after "
                f"waiting PUBLISH_TIMEOUT={params.blocked_connection_timeout or 0:g} s"
            )
        if signal == "process_message":
            _prime(args[0])
        elif signal == "delay_message":
            self._hold_at_most_max(args[0])
        # Dramatiq's own loop, over the middleware that implement the hook only.
        for hook in self._hook("before_" + signal):
            try:
                hook(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in before_%s of %r.", signal, hook.__self__,
                                     exc_info=True)

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        for hook in reversed(self._hook("after_" + signal)):
            try:
                hook(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in after_%s of %r.", signal, hook.__self__,
                                     exc_info=True)

    def _hold_at_most_max(self, message: Any) -> None:
        # The delay consumer holds the message until options["eta"]; past our limit,
        # hold it until the limit and let enqueue() send it on its next hop.
        eta, latest = message.options.get(ETA), current_millis() + self.max_hold_ms
        if isinstance(eta, int | float) and eta > latest and self._hop_fits(message):
            message.options[BJ_ETA] = max(int(eta), int(message.options.get(BJ_ETA) or 0))
            message.options[ETA] = latest

    def _hop_fits(self, message: Any) -> bool:
        # A hop adds ``bj_eta`` (about 30 bytes): a message that would then fail the size
        # limit is held until due instead, as plain Dramatiq would.
        return self.max_message_bytes is None or len(message.encode()) + 40 <= self.max_message_bytes

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        self.state.blocked = False
        due = message.options.get(BJ_ETA)
        now = current_millis()
        if delay is not None and delay > self.max_hold_ms:
            message = message.copy(options={BJ_ETA: now + delay})
            delay = self.max_hold_ms
        elif delay is None and due is not None:
            remaining = int(due) - now
            if remaining > 0:  # never early: even a few milliseconds go back to the delay queue
                delay = min(remaining, self.max_hold_ms)
            else:
                options = {k: v for k, v in message.options.items() if k != BJ_ETA}
                message = dataclasses.replace(message, options=options)
        return self._publish(message, delay)

    def _publish(self, message: Any, delay: int | None) -> Any:
        # Dramatiq's RabbitmqBroker.enqueue, with the properties of the one publish path
        # (broker_jobs.publishing); the size limit runs in the enqueue hook (MessageSizeLimit).
        canonical_queue_name = queue_name = message.queue_name
        if self.quorum:
            canonical_queue_name = queue_name = topology.canonical(queue_name, QUORUM)
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={ETA: current_millis() + delay})
        attempts = 0
        while True:
            try:
                self.declare_queue(canonical_queue_name, ensure=True)
                self.logger.debug("Enqueueing message %r on queue %r.", message.message_id, queue_name)
                self.emit_before("enqueue", message, delay)
                if self.quorum and delay is None:
                    # The band by the priority the enqueue hook has just set; the body names it.
                    queue_name = topology.band_queue(canonical_queue_name, message.options.get(BROKER_PRIORITY))
                    if message.queue_name != queue_name:
                        message = message.copy(queue_name=queue_name)
                # mandatory only means something with confirms: an unroutable message then raises.
                self.channel.basic_publish(exchange="", routing_key=queue_name, body=message.encode(),
                                           properties=publishing.properties_for(message.options),
                                           mandatory=self.confirm_delivery)
                self.emit_after("enqueue", message, delay)
                return message
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
                # A fresh channel and connection for the next attempt; a vanished queue is redeclared.
                del self.connection
                if isinstance(exc, pika.exceptions.UnroutableError):
                    self.queues_pending.add(q_name(queue_name))
                attempts += 1
                if attempts >= MAX_ENQUEUE_ATTEMPTS:
                    raise dramatiq.errors.ConnectionClosed(exc) from None
                self.logger.debug("Retrying enqueue due to closed connection. [%d/%d] attempts made so far.",
                                  attempts, MAX_ENQUEUE_ATTEMPTS)

    def _ensure_queue(self, canonical_queue_name: str) -> None:
        # Dramatiq's loop, except that a queue someone else declared with other arguments
        # is used as it is (a passive declare) and reported once, instead of a 406 that
        # closes the channel on every try and ends in ConnectionClosed.
        if self.quorum:  # a band found missing (404, unroutable) stands for its family
            canonical_queue_name = topology.canonical(canonical_queue_name, QUORUM)
            if any(band in self.queues_pending for band in topology.bands(canonical_queue_name)):
                self.queues_pending.add(canonical_queue_name)
        attempts = 0
        while canonical_queue_name in self.queues_pending:
            try:
                for queue in topology.family(canonical_queue_name, self.queue_type):
                    self._declare_or_accept(queue)
                self.queues_pending.difference_update(topology.bands(canonical_queue_name))
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
                del self.connection
                attempts += 1
                if attempts >= MAX_DECLARE_ATTEMPTS:
                    raise dramatiq.errors.ConnectionClosed(exc) from None

    def arguments(self, queue: str) -> dict[str, Any]:
        """The arguments this broker declares ``queue`` with (:func:`broker_jobs.topology.wanted_arguments`)."""
        arguments = topology.wanted_arguments(queue, self.max_priority, self.queue_type, self.delivery_limit)
        if not self.max_priority:
            arguments.pop("x-max-priority", None)
        return arguments

    # Dramatiq's own declares (get_queue_message_counts, join): with our arguments, and a band's delays
    # and dead letters in its family's queues.
    def _declare_queue(self, queue_name: str) -> Any:
        return self.channel.queue_declare(queue=queue_name, durable=True, arguments=self.arguments(queue_name))

    def _declare_dq_queue(self, queue_name: str) -> Any:
        return self._declare_queue(dq_name(topology.canonical(queue_name, self.queue_type)))

    def _declare_xq_queue(self, queue_name: str) -> Any:
        return self._declare_queue(topology.canonical(queue_name, self.queue_type) + ".XQ")

    def _declare_or_accept(self, queue: str) -> None:
        arguments = self.arguments(queue)
        try:
            self.channel.queue_declare(queue=queue, durable=True, arguments=arguments)
        except pika.exceptions.ChannelClosedByBroker as exc:
            conflict = topology.conflict_from(exc, queue, self.queue_type)
            if conflict is None:
                raise
            del self.channel  # closed by the 406: the next one is fresh
            self.channel.queue_declare(queue=queue, passive=True)
            topology.report(conflict)


class BandedWorkQueue(PriorityQueue[Any]):
    """A worker's queue of messages it holds, high band first, then by the actor's priority, then FIFO.

    Dramatiq ranks what one worker process has prefetched by the actor's
    ``priority`` only.  The bands of a quorum family are consumed side by side,
    so the order among the held messages is the bands' (:func:`broker_jobs.topology.band_rank`).
    """

    def _put(self, item: Any) -> None:
        rank = topology.band_rank(str(item.message.queue_name))
        super()._put(dataclasses.replace(item, priority=rank * 1_000_000_000 + item.priority))


class TopologyGuard(dramatiq.Middleware):
    """Declares every queue before a worker starts, so a conflict is reported before the first message.

    With quorum queues, a worker told to consume some queues (``dramatiq ... -Q etl``) consumes their
    bands too, and runs the messages it holds high band first.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not isinstance(broker, RabbitmqBroker):
            return
        if isinstance(broker, JobsBroker) and broker.quorum:
            whitelist = getattr(worker, "consumer_whitelist", None)
            if whitelist:
                for queue in list(whitelist):
                    whitelist.update(topology.bands(topology.canonical(queue, QUORUM)))
            worker.work_queue = BandedWorkQueue()
        wanted = getattr(worker, "consumer_whitelist", None) or broker.get_declared_queues()
        for queue in sorted(q for q in wanted if not q.endswith((".DQ", ".XQ"))):
            try:
                broker.declare_queue(queue, ensure=True)
            except dramatiq.errors.ConnectionError:
                return


def build_middleware(settings: Settings, *, stub: bool = False) -> list[dramatiq.Middleware]:
    """The middleware stack, in the order documented above."""
    rate_backend: RateLimiterBackend
    if stub:
        rate_backend = StubBackend()
    elif not settings.redis_url:
        rate_backend = HostBackend(settings.rate_limit_file)  # every process of this host, not other hosts
    else:
        from dramatiq.rate_limits.backends import RedisBackend  # deferred: redis-py, only with REDIS_URL set

        rate_backend = RedisBackend(url=settings.redis_url)

    # The exporter serves the host's metrics and probes; the heartbeat feeds the probes.
    exporter: list[dramatiq.Middleware] = [] if stub else [prometheus_middleware(), WorkerHeartbeat()]
    user_jobs: list[dramatiq.Middleware] = [] if stub else [JobModules()]
    history = History(history_writer, settings.log_runs, settings.job_report_dir)
    presence: list[dramatiq.Middleware] = [] if stub else [WorkerPresence(settings.database_url,
                                                                          history.running_jobs)]
    # First, so that its after_worker_boot runs last (Dramatiq runs after hooks bottom to top).
    heap: list[dramatiq.Middleware] = [] if stub else [HeapFreeze()]
    return [
        *heap,
        *exporter,
        AgeLimit(),
        TimeLimit(time_limit=settings.job_timeout * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        CurrentMessage(),
        PriorityTagging(),
        MessageSizeLimit(settings.max_message_bytes),
        JobRetries(
            max_retries=settings.max_retries,
            min_backoff=int(settings.retry_min_backoff * 1000),
            max_backoff=settings.retry_max_backoff_ms,
        ),
        FireDedup(),
        RateLimit(rate_backend, limits=() if stub else None),  # a real worker reads the jobs file's at boot
        JobMetrics(),
        history,
        TopologyGuard(),
        *user_jobs,
        *presence,
    ]


def build_broker(settings: Settings | None = None, *, stub: bool = False) -> dramatiq.Broker:
    """Build a broker with the full middleware stack (``stub=True`` for unit tests).

    Building never connects: connections open on first use.
    """
    settings = settings or get_settings()
    middleware = build_middleware(settings, stub=stub)
    broker: dramatiq.Broker
    if stub:
        broker = StubBroker(middleware=middleware)
    else:
        timeout = str(settings.publish_timeout)
        urls = [connection_url(url, blocked_connection_timeout=timeout) for url in settings.amqp_urls]
        broker = JobsBroker(
            url=urls[0] if len(urls) == 1 else urls,
            # Quorum queues have no priorities: bands instead (see JobsBroker).
            max_priority=MAX_PRIORITY if settings.queue_type == CLASSIC else None,
            confirm_delivery=True,
            middleware=middleware,
            max_hold_ms=settings.consumer_timeout * 1000 // 2,
            max_message_bytes=settings.max_message_bytes,
            queue_type=settings.queue_type,
            delivery_limit=settings.quorum_delivery_limit,
        )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


_broker: dramatiq.Broker | None = None


def get_broker() -> dramatiq.Broker:
    """The process's broker, built once and installed as Dramatiq's global broker."""
    global _broker
    if _broker is None:
        current = dramatiq.broker.global_broker
        if current is not None and getattr(current, "_broker_jobs", False):
            _broker = current
        else:
            _broker = build_broker()
            _broker._broker_jobs = True  # type: ignore[attr-defined]  # our mark on Dramatiq's broker
            dramatiq.set_broker(_broker)
    return _broker


def use_broker(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Install ``broker`` as the process's broker (tests, embedding)."""
    global _broker
    broker._broker_jobs = True  # type: ignore[attr-defined]  # our mark on Dramatiq's broker
    _broker = broker
    dramatiq.set_broker(broker)
    return broker
