"""The tests' one helpers package: what tests in every folder share, one module per concern.

- :mod:`.environment`: the repository root, the shared RabbitMQ's URL;
- :mod:`.polling`: :func:`wait_for`, waiting on a condition instead of a fixed sleep;
- :mod:`.processes`: our commands as subprocesses (start, stop, kill, logs), free ports;
- :mod:`.rabbitmq`: vhosts of a test's own, queue depths, publishing and purging as another service would;
- :mod:`.databases`: PostgreSQL databases of a test's own;
- :mod:`.faults`: the fault tests' workers, producer, effects table and ledger;
- :mod:`.services`: private RabbitMQ and Redis servers the fault tests may break;
- :mod:`.events`: the start/done events the scale-out jobs write;
- :mod:`.fake_apis`: local HTTP servers speaking GitHub's and Spotify's shapes;
- :mod:`.foreign` (not re-exported: its names are the wire's): messages built by hand as a foreign sender would;
- :mod:`.scheduling` (not re-exported: it imports broker_jobs): a scheduler on a stub broker, a fake clock.

Nothing re-exported here imports broker_jobs at import time: tests/conftest.py imports this package before it
points broker_jobs' settings at the test environment.
"""

from __future__ import annotations

from .databases import database
from .environment import RABBITMQ_URL, ROOT
from .events import Event, count_events, events
from .fake_apis import Answer, FakeApis, fixture
from .faults import (
    EFFECTS_DDL,
    QUEUE,
    UPSERT,
    Producer,
    Tally,
    Workers,
    collect,
    dead_keys,
    dead_letters,
    effect_times,
    effects,
    fault_message,
    tally,
)
from .polling import wait_for
from .processes import Process, free_port, free_ports, kill, log_text, start, stop, wait_for_log
from .rabbitmq import management, publish, purge, queue_depth, vhost
from .services import PrivateRabbit, PrivateRedis, ServiceUnavailable, booted_rabbit, listening, private_vhost

__all__ = [
    "EFFECTS_DDL",
    "QUEUE",
    "RABBITMQ_URL",
    "ROOT",
    "UPSERT",
    "Answer",
    "Event",
    "FakeApis",
    "PrivateRabbit",
    "PrivateRedis",
    "Process",
    "Producer",
    "ServiceUnavailable",
    "Tally",
    "Workers",
    "booted_rabbit",
    "collect",
    "count_events",
    "database",
    "dead_keys",
    "dead_letters",
    "effect_times",
    "effects",
    "events",
    "fault_message",
    "fixture",
    "free_port",
    "free_ports",
    "kill",
    "listening",
    "log_text",
    "management",
    "private_vhost",
    "publish",
    "purge",
    "queue_depth",
    "start",
    "stop",
    "tally",
    "vhost",
    "wait_for",
    "wait_for_log",
]
