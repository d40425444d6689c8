"""Fixtures of the fault tests: services of their own that they may stop, block and break.

Nothing here touches the shared RabbitMQ, Redis or PostgreSQL server: the
RabbitMQ node (or, with ``--rabbitmq-cluster``, the session's three-node
cluster) and the Redis server are private processes, and the database is
one created for the test (the shared PostgreSQL server is never stopped or
reconfigured).  A private service that cannot start skips the test locally and
fails it under ``CI=1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import (
    EFFECTS_DDL,
    TEST_POSTGRES_URL,
    PrivateRabbit,
    PrivateRedis,
    ServiceUnavailable,
    Workers,
    booted_rabbit,
    database,
    free_port,
    port_open,
    private_vhost,
    unavailable,
)
from tests.support.cluster import on_cluster


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests run only when asked for (``-m soak``), even under a plain ``pytest tests/framework/faults``."""
    if "soak" in (config.getoption("-m") or ""):
        return
    here = Path(__file__).parent
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("soak") and here in Path(item.path).parents else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def private_rabbit(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbit]:
    """A RabbitMQ node of the fault tests' own (booted once: about 7 s here).

    With ``--rabbitmq-cluster`` the session's three-node cluster stands in for it (its first node's
    port and URL, ``rabbitmqctl``, the consumer timeout on every node); only ``also_on_cluster`` tests,
    which never stop or break the node, run then.
    """
    if on_cluster(request.config):
        yield request.getfixturevalue("rabbitmq_cluster")
        return
    with booted_rabbit(tmp_path_factory.mktemp("bjfault-rabbit")) as node:
        yield node


@pytest.fixture
def rabbit(private_rabbit: PrivateRabbit) -> Iterator[PrivateRabbit]:
    """The private node, with the app running and its defaults restored after the test."""
    yield private_rabbit
    private_rabbit.restore()


@pytest.fixture
def vhost_url(rabbit: PrivateRabbit) -> Iterator[str]:
    """An AMQP URL on a fresh vhost of the private node, deleted after the test."""
    with private_vhost(rabbit) as url:
        yield url


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis server of the test's own, which it may stop and start."""
    server = PrivateRedis()
    try:
        server.start()
    except ServiceUnavailable as exc:
        unavailable(f"a private Redis server ({exc})")
    yield server
    server.close()


@pytest.fixture
def fault_db() -> Iterator[str]:
    """A PostgreSQL database of the test's own (history and effects), dropped after it."""
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    with database(TEST_POSTGRES_URL, "bj_fault", EFFECTS_DDL) as url:
        yield url


@pytest.fixture
def fault_env(vhost_url: str, fault_db: str) -> dict[str, str]:
    """The environment of worker and CLI processes in a fault test."""
    return {
        "RABBITMQ_URL": vhost_url,
        "DATABASE_URL": fault_db,
        "FAULT_EFFECTS_URL": fault_db,
        "RETRY_MIN_BACKOFF": "0.05",
        "RETRY_MAX_BACKOFF": "10",
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": "",
    }


@pytest.fixture
def workers(fault_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    """A factory of started worker groups (``workers(processes=1, threads=4, **env)``), all
    killed after the test whatever happened."""
    groups: list[Workers] = []

    def start(processes: int = 1, threads: int = 4, wait: bool = True, **env: str) -> Workers:
        # Metrics of their own: the shared port 9191 may be anybody's.
        metrics = {"METRICS_PORT": str(free_port()), "METRICS_DIR": str(tmp_path / f"metrics-{len(groups)}")}
        group = Workers({**fault_env, **metrics, **env}, tmp_path / f"workers-{len(groups)}.log", processes,
                        threads)
        groups.append(group)
        return group.start(wait=wait)

    yield start
    for group in groups:
        group.kill()


@pytest.fixture
def producer_broker(fault_env: dict[str, str], settings_env: pytest.MonkeyPatch) -> Iterator[object]:
    """A broker_jobs broker in this process publishing to the private node (nothing declared on it)."""
    from broker_jobs.broker import build_broker
    from broker_jobs.settings import get_settings

    for name, value in fault_env.items():
        settings_env.setenv(name, value)
    broker = build_broker(get_settings())
    broker.declare_queue("faults")
    yield broker
    broker.close()
