"""What the fault tests share: the effects table (written by :mod:`tests.framework.faults.jobs` in the workers), worker
processes, a producer that never drops a message silently, and the ledger that counts sent, executed, dead and
lost.

Importing this module declares no actor: the test process must not register the fault jobs on its own broker.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pika
from dramatiq.message import Message, generate_unique_id
from sqlalchemy import create_engine, text

from .processes import Process

QUEUE = "faults"

EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS fault_effects (
    key text PRIMARY KEY,
    runs integer NOT NULL DEFAULT 1,
    first_at double precision NOT NULL,
    last_at double precision NOT NULL
)
"""

UPSERT = text(
    "INSERT INTO fault_effects (key, runs, first_at, last_at) VALUES (:key, 1, :now, :now) "
    "ON CONFLICT (key) DO UPDATE SET runs = fault_effects.runs + 1, last_at = excluded.last_at"
)

#: Where each test's figures go (one JSON line per test); the README table quotes them.
FIGURES = Path(os.environ.get("FAULT_FIGURES", "/tmp/broker-jobs-fault-figures.jsonl"))


class Workers(Process):
    """``dramatiq broker_jobs.actors tests.framework.faults.jobs`` as a user starts it.

    Parameters:
      env: Extra environment (RABBITMQ_URL, DATABASE_URL, ...).
      log: File receiving the workers' output.
      processes: Worker processes.
      threads: Threads per process.
    """

    def __init__(self, env: dict[str, str], log: Path, processes: int = 1, threads: int = 4) -> None:
        super().__init__(["-m", "dramatiq", "broker_jobs.actors", "tests.framework.faults.jobs", "--processes",
                          str(processes), "--threads", str(threads), "--queues", QUEUE], env, log)
        self.processes = processes
        self._ready_before = 0

    def start(self, wait: bool = True) -> Workers:  # type: ignore[override]
        """Start the master and its worker processes; wait until each is ready for action."""
        self._ready_before = self.text().count("Worker process is ready for action")
        super().start()
        if wait:
            self.ready()
        return self

    def ready(self) -> Workers:
        """Wait until every worker process of the last start is ready for action."""
        self.wait_for_log("Worker process is ready for action", count=self._ready_before + self.processes)
        return self

    def children(self) -> list[int]:
        """The pids of the live worker processes (not the master, not the metrics fork)."""
        import psutil

        if self.proc is None:
            return []
        pids = {int(pid) for pid in re.findall(r"\[PID (\d+)\] \[\w+\] \[dramatiq\.WorkerProcess", self.text())}
        try:
            return sorted(p.pid for p in psutil.Process(self.proc.pid).children() if p.pid in pids)
        except psutil.NoSuchProcess:
            return []


def fault_message(actor: str, key: str, options: dict[str, Any] | None = None, **kwargs: Any) -> Message[Any]:
    """A message for one of :mod:`tests.framework.faults.jobs`, built as any other service would."""
    return Message(queue_name=QUEUE, actor_name=actor, args=(key,), kwargs=kwargs, options=dict(options or {}))


@dataclass
class Producer:
    """Publishes through a broker_jobs broker; a publish that raised is reported and sent again.

    Parameters:
      broker: A :class:`~broker_jobs.broker.JobsBroker` (confirmed publishes).
      copy_on_retry: Send a failed message again as a copy with a new message id, as the scheduler
        republishes a slot (the fire id, if any, stays: the workers' dedup runs one of the copies).
    """

    broker: Any
    copy_on_retry: bool = False
    reported: int = 0
    errors: list[str] = field(default_factory=list)

    def send(self, message: Message[Any], *, delay: int | None = None, give_up_after: float = 120) -> None:
        """Publish until RabbitMQ confirms; every failed try is counted in ``reported``."""
        deadline = time.monotonic() + give_up_after
        while True:
            try:
                self.broker.enqueue(message, delay=delay)
                return
            except Exception as exc:  # the producer's loop: report, wait, send again
                self.reported += 1
                self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                if time.monotonic() > deadline:
                    raise
                if self.copy_on_retry:
                    message = message.copy(message_id=generate_unique_id())
                time.sleep(0.5)  # not a wait: the producer's back-off between two tries


def effects(url: str) -> dict[str, int]:
    """``key -> runs`` of every effect recorded in ``fault_effects``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {key: runs for key, runs in conn.execute(text("SELECT key, runs FROM fault_effects"))}
    finally:
        engine.dispose()


def effect_times(url: str) -> dict[str, tuple[int, float, float]]:
    """``key -> (runs, first_at, last_at)`` (epoch seconds)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT key, runs, first_at, last_at FROM fault_effects"))
            return {key: (runs, first, last) for key, runs, first, last in rows}
    finally:
        engine.dispose()


def dead_letters(amqp_url: str, queue: str = QUEUE) -> list[Message[Any] | bytes]:
    """The messages in ``queue.XQ`` (decoded when possible), left in place."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        try:
            count = channel.queue_declare(queue + ".XQ", passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return []
        found: list[Message[Any] | bytes] = []
        for _ in range(count):
            method, _props, body = channel.basic_get(queue + ".XQ", auto_ack=False)
            if method is None:
                break
            try:
                found.append(Message.decode(body))
            except Exception:
                found.append(body)
        return found  # closing the connection puts them back
    finally:
        connection.close()


@dataclass
class Tally:
    """What happened to every message a test sent."""

    test: str
    sent: int
    executed: int
    executions: int
    dead_lettered: int
    lost: int
    reported: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> Tally:
        """Append these figures to :data:`FIGURES` and print them."""
        line = json.dumps({**asdict(self), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        with FIGURES.open("a") as out:
            out.write(line + "\n")
        print(line)
        return self


def tally(test: str, sent: Iterable[str], done: dict[str, int], dead: Iterable[str] = (), *,
          reported: int = 0, **extra: Any) -> Tally:
    """Count the outcome of every sent key: executed (its effect exists), dead-lettered, or lost."""
    sent = set(sent)
    dead = set(dead) & sent
    executed = sent & set(done)
    lost = sent - executed - dead
    return Tally(test=test, sent=len(sent), executed=len(executed),
                 executions=sum(done[k] for k in executed), dead_lettered=len(dead), lost=len(lost),
                 reported=reported, extra=extra).record()


def dead_keys(amqp_url: str) -> list[str]:
    """The ``key`` argument of every decodable dead letter of the fault queue."""
    return [m.args[0] for m in dead_letters(amqp_url) if isinstance(m, Message) and m.args]


def collect(strategy: Any, count: int) -> list[Any]:
    """``count`` examples of a Hypothesis ``strategy``, from its generator.

    For tests that publish their examples in bulk and judge them together (a worker
    round trip per example would take hours): no shrinking, no example database.
    """
    from hypothesis import HealthCheck, Phase, given, settings

    found: list[Any] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(example: Any) -> None:
        found.append(example)

    draw()
    return found
