"""Fixtures shared by every test: stub and real brokers, databases, Redis.

Real-service fixtures skip when the service is missing locally and FAIL when
``CI`` is set, so CI can never pass by skipping what it must exercise.

``--rabbitmq-cluster`` (``make test-cluster``) runs the session against a private
three-node RabbitMQ cluster with ``QUEUE_TYPE=quorum``: the tests marked ``cluster``
(tests/framework/cluster, which kill and cut its nodes) and the tests marked
``also_on_cluster``, whose RabbitMQ fixtures (``rabbitmq_url``, ``rabbit_broker``,
``amqp_vhost`` and the fault tests' ``private_rabbit``) then point at the cluster
instead of the shared node.  Without it, ``cluster`` tests are left out unless
``-m`` names them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import broker_jobs.app.main  # noqa: F401  (registers the built-in jobs' loader, as the console script does)
from broker_jobs.middleware.heap import skip_heap_freeze
from tests.support import (
    IN_CI,
    RABBITMQ_URL,
    ROOT,
    TEST_POSTGRES_URL,
    TEST_REDIS_URL,
    database,
    port_open,
    run_cli,
    unavailable,
    vhost,
)
from tests.support.cluster import RabbitCluster, on_cluster, rabbit_cluster

__all__ = ["IN_CI", "RABBITMQ_URL", "ROOT", "TEST_POSTGRES_URL", "TEST_REDIS_URL", "port_open", "run_cli",
           "unavailable"]  # still importable from here while other branches do; new code imports tests.support

_TMP = Path(tempfile.mkdtemp(prefix="broker-jobs-tests-"))

# Before broker_jobs reads its settings: a private SQLite file, the repo's jobs file.
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP}/history.sqlite3")
os.environ.setdefault("JOBS_CONFIG", str(ROOT / "config" / "jobs.yaml"))
os.environ.setdefault("DATA_DIR", str(_TMP / "data"))
os.environ.setdefault("QDRANT_PATH", str(_TMP / "qdrant"))
os.environ.setdefault("EXPORT_DIR", str(_TMP / "exports"))
os.environ.setdefault("RATE_LIMIT_FILE", str(_TMP / "rate_limits.sqlite3"))
os.environ.setdefault("RETRY_MIN_BACKOFF", "0.05")
# Worker processes started by tests export metrics from a directory and port of their own.
os.environ.setdefault("METRICS_DIR", str(_TMP / "metrics"))
os.environ.setdefault("METRICS_PORT", str(19000 + os.getpid() % 1000))
os.environ.pop("REDIS_URL", None)  # single-host mode unless a test asks for Redis
# The test process runs in-process workers but is no worker process: its heap stays unfrozen.
skip_heap_freeze()



def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rabbitmq-cluster", action="store_true",
                     help="run the tests marked cluster and also_on_cluster against a private three-node "
                          "RabbitMQ cluster with QUEUE_TYPE=quorum (make test-cluster)")


def pytest_configure(config: pytest.Config) -> None:
    if on_cluster(config):
        # Every broker this session builds, in the test process or in the processes it starts.
        os.environ["QUEUE_TYPE"] = "quorum"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the cluster only the ``cluster`` and ``also_on_cluster`` tests run; elsewhere no ``cluster`` test
    runs unless ``-m`` names it."""
    if on_cluster(config):
        def wanted(item: pytest.Item) -> bool:
            return any(item.get_closest_marker(m) for m in ("cluster", "also_on_cluster"))
    elif "cluster" in (config.getoption("-m") or ""):
        return
    else:
        def wanted(item: pytest.Item) -> bool:
            return item.get_closest_marker("cluster") is None
    drop = [item for item in items if not wanted(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if wanted(item)]


@pytest.fixture(scope="session")
def rabbitmq_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    """Three private RabbitMQ nodes joined into one cluster (tests/support/cluster.py), for the session."""
    with rabbit_cluster(tmp_path_factory.mktemp("bjcluster")) as booted:
        yield booted


@pytest.fixture(scope="session")
def rabbitmq_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A RabbitMQ URL on a vhost of its own, deleted after the session (on the cluster with
    ``--rabbitmq-cluster``)."""
    if on_cluster(request.config):
        with request.getfixturevalue("rabbitmq_cluster").vhost("bj-test") as url:
            yield url
        return
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-test") as url:
        yield url or RABBITMQ_URL


@pytest.fixture
def amqp_vhost(request: pytest.FixtureRequest) -> Iterator[str]:
    """An AMQP URL on a fresh vhost of the test's own, deleted after it: on the shared RabbitMQ, or on the
    cluster with ``--rabbitmq-cluster``."""
    if on_cluster(request.config):
        with request.getfixturevalue("rabbitmq_cluster").vhost("bj-vhost") as url:
            yield url
        return
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-vhost") as url:
        if url is None:
            unavailable("a vhost of the test's own on the shared RabbitMQ")
        yield url


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set environment variables for a test; the settings cache is cleared around it."""
    from broker_jobs.settings import get_settings

    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def stub_broker() -> Iterator[object]:
    """A StubBroker with the full middleware stack, installed as the process's broker."""
    import dramatiq

    from broker_jobs.broker import build_broker, use_broker
    from broker_jobs.coordination import MemoryClaims, set_claims

    previous = dramatiq.broker.global_broker
    set_claims(MemoryClaims())
    broker = use_broker(build_broker(stub=True))
    broker.emit_after("process_boot")
    yield broker
    broker.flush_all()
    broker.close()
    set_claims(None)
    if previous is not None:
        use_broker(previous)


@pytest.fixture
def stub_worker(stub_broker: object) -> Iterator[object]:
    """A worker consuming from ``stub_broker``."""
    from dramatiq import Worker

    worker = Worker(stub_broker, worker_timeout=50, worker_threads=2)  # type: ignore[arg-type]
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def rabbit_broker(rabbitmq_url: str, settings_env: pytest.MonkeyPatch) -> Iterator[object]:
    """A real RabbitMQ broker (test vhost) with the full stack, installed as the process's broker."""
    import dramatiq

    from broker_jobs.broker import build_broker, use_broker
    from broker_jobs.settings import get_settings

    settings_env.setenv("RABBITMQ_URL", rabbitmq_url)
    previous = dramatiq.broker.global_broker
    broker = use_broker(build_broker(get_settings()))
    broker.emit_after("process_boot")
    yield broker
    try:
        for queue in list(broker.get_declared_queues()):
            broker.flush(queue)
    finally:
        broker.close()
        if previous is not None:
            use_broker(previous)


@pytest.fixture
def redis_url() -> str:
    """A real Redis database (db 15 by default), flushed before the test."""
    if not port_open(TEST_REDIS_URL, 6379):
        unavailable(f"Redis at {TEST_REDIS_URL}")
    import redis

    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of its own, dropped after the session."""
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    with database(TEST_POSTGRES_URL, "bj_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    from broker_jobs.store.db import get_engine
    from broker_jobs.store.models import metadata

    engine = get_engine(url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    return url
