"""The tests' one helpers package: what tests in every folder share, one module per concern.

- :mod:`.api`: the API's signing secret, tokens, a quiet jobs file;
- :mod:`.environment`: the repository root, the shared services' URLs, skipping (failing in CI) when one is missing;
- :mod:`.polling`: :func:`wait_for`, waiting on a condition instead of a fixed sleep;
- :mod:`.processes`: our commands as subprocesses (start, stop, kill, logs, ``run_cli``), free ports;
- :mod:`.rabbitmq`: vhosts of a test's own, queue depths, publishing and purging as another service would;
- :mod:`.databases`: PostgreSQL databases of a test's own;
- :mod:`.faults`: the fault tests' workers, producer, effects table and ledger;
- :mod:`.services`: private RabbitMQ and Redis servers the fault tests may break;
- :mod:`.events`: the start/done events the scale-out jobs write;
- :mod:`.fake_apis`: local HTTP servers speaking GitHub's and Spotify's shapes;
- :mod:`.probes` (not re-exported: names of the probe tests): a vhost taken away and given back, probes;
- :mod:`.foreign` (not re-exported: its names are the wire's): messages built by hand as a foreign sender would;
- :mod:`.scheduling` (not re-exported: it imports broker_jobs): a scheduler on a stub broker, a fake clock.

Nothing re-exported here imports broker_jobs at import time: tests/conftest.py imports this package before it
points broker_jobs' settings at the test environment.
"""

from __future__ import annotations

from .api import JOBS_FILE, SECRET, UNREACHABLE, bearer, token
from .databases import database
from .environment import IN_CI, RABBITMQ_URL, ROOT, TEST_POSTGRES_URL, TEST_REDIS_URL, port_open, unavailable
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
from .processes import Process, free_port, free_ports, kill, log_text, run_cli, start, stop, wait_for_log
from .rabbitmq import management, publish, purge, queue_depth, vhost
from .services import PrivateRabbit, PrivateRedis, ServiceUnavailable, booted_rabbit, private_vhost

__all__ = [
    "EFFECTS_DDL",
    "IN_CI",
    "JOBS_FILE",
    "QUEUE",
    "RABBITMQ_URL",
    "ROOT",
    "SECRET",
    "TEST_POSTGRES_URL",
    "TEST_REDIS_URL",
    "UNREACHABLE",
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
    "bearer",
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
    "log_text",
    "management",
    "port_open",
    "private_vhost",
    "publish",
    "purge",
    "queue_depth",
    "run_cli",
    "start",
    "stop",
    "tally",
    "token",
    "unavailable",
    "vhost",
    "wait_for",
    "wait_for_log",
]
