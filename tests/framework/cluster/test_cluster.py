"""A three-node RabbitMQ cluster with QUEUE_TYPE=quorum, proven by killing and cutting nodes.

Every process is given the three nodes (``RABBITMQ_URLS``) and connects to the
first that answers.  Run in this order on one cluster (tests/support/cluster.py):

0. the priority (the classic backlog test), retry, dead-letter and replay tests of
   tests/framework/integration, here on the cluster;
1. jobs from two worker processes while the node holding the queue's Raft
   leader is SIGKILLed mid-run: every job runs, none is lost or dead-lettered,
   and duplicates stay within what at-least-once allows;
2. the scheduler firing every second across a node kill: every slot runs once
   (the fire-id dedup drops a republished copy);
3. a node cut off from its peers and healed: it pauses (pause_minority), its
   clients move to the others and work goes on, and it rejoins by itself.

The figures go to the fault figures file (tests/support/faults.py) and the README.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import (
    EFFECTS_DDL,
    TEST_POSTGRES_URL,
    Process,
    Producer,
    Workers,
    database,
    effect_times,
    effects,
    fault_message,
    free_port,
    port_open,
    tally,
    unavailable,
    wait_for,
)
from tests.support.cluster import NET_TICKTIME, RabbitCluster, rabbit_cluster
from tests.support.faults import dead_letters

pytestmark = [pytest.mark.cluster, pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

#: Jobs of the node-kill test: what fits the cluster suite's budget on 2 cores (the README has the timing).
JOBS = 10_000

JOBS_YAML = """\
modules: [tests.framework.faults.jobs]
jobs:
  - {id: beat, actor: record_fire, queue: faults, interval: 1, misfire: run_all, overlap: allow}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    with rabbit_cluster(tmp_path_factory.mktemp("bjcluster")) as booted:
        yield booted


@pytest.fixture
def db() -> Iterator[str]:
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    with database(TEST_POSTGRES_URL, "bj_cluster", EFFECTS_DDL) as url:
        yield url


@pytest.fixture
def env(cluster: RabbitCluster, db: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of every process of a test: the three nodes, quorum queues, a vhost of its own."""
    vhost = cluster.add_vhost(re.sub(r"\W", "-", request.node.name)[:40])
    return {
        "RABBITMQ_URLS": ",".join(urls_with_heartbeat(cluster, vhost)),
        "QUEUE_TYPE": "quorum",
        "DATABASE_URL": db,
        "FAULT_EFFECTS_URL": db,
        "RETRY_MIN_BACKOFF": "0.05",
        "RETRY_MAX_BACKOFF": "10",
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": "",
    }


def urls_with_heartbeat(cluster: RabbitCluster, vhost: str) -> list[str]:
    # A short heartbeat: a client of a node that went silent notices in seconds.
    return [url + "?heartbeat=5" for url in cluster.urls(vhost)]


@pytest.fixture
def producer_broker(env: dict[str, str], settings_env: pytest.MonkeyPatch) -> Iterator[object]:
    from broker_jobs.broker import build_broker
    from broker_jobs.settings import get_settings

    for name, value in env.items():
        settings_env.setenv(name, value)
    broker = build_broker(get_settings())
    broker.declare_queue("faults")
    yield broker
    broker.close()


def start_workers(env: dict[str, str], log: Path) -> Workers:
    metrics = {"METRICS_PORT": str(free_port()), "METRICS_DIR": str(log.parent / f"metrics-{log.stem}")}
    return Workers({**env, **metrics}, log, processes=1, threads=4).start()


def live_url(cluster: RabbitCluster, env: dict[str, str]) -> str:
    """The URL of a node that serves now (the test's vhost)."""
    urls = env["RABBITMQ_URLS"].split(",")
    return next(url for node, url in zip(cluster.nodes, urls, strict=True) if node.alive() and node.listening())


def vhost_of(env: dict[str, str]) -> str:
    from urllib.parse import unquote

    return unquote(env["RABBITMQ_URLS"].split(",")[0].rsplit("/", 1)[1].split("?")[0])


@pytest.fixture
def cluster_broker(cluster: RabbitCluster, settings_env: pytest.MonkeyPatch) -> Iterator[object]:
    """A broker in this process on the cluster (QUEUE_TYPE=quorum), installed as the process's broker."""
    import dramatiq

    from broker_jobs.broker import build_broker, use_broker
    from broker_jobs.settings import get_settings

    vhost = cluster.add_vhost("in-process")
    settings_env.setenv("RABBITMQ_URLS", ",".join(urls_with_heartbeat(cluster, vhost)))
    settings_env.setenv("QUEUE_TYPE", "quorum")
    previous = dramatiq.broker.global_broker
    broker = use_broker(build_broker(get_settings()))
    broker.emit_after("process_boot")
    yield broker
    broker.close()
    if previous is not None:
        use_broker(previous)


def test_priorities_retries_dead_letters_and_replay_pass_on_the_cluster(cluster_broker):
    from tests.framework.integration.test_quorum_queues import (
        test_a_job_runs_a_failing_one_is_retried_then_dead_lettered_and_replays as jobs_retries_and_dead_letters,
    )
    from tests.framework.integration.test_rabbitmq_jobs import (
        test_a_high_priority_message_overtakes_a_backlog_of_low_ones as classic_backlog_test,
    )

    classic_backlog_test(cluster_broker)
    jobs_retries_and_dead_letters(cluster_broker)


def test_every_job_runs_while_the_node_holding_the_queue_leader_is_killed(cluster, env, producer_broker, db,
                                                                          tmp_path):
    vhost = vhost_of(env)
    first, second = start_workers(env, tmp_path / "w1.log"), start_workers(env, tmp_path / "w2.log")
    try:
        keys = [f"kill-{i}" for i in range(JOBS)]
        producer = Producer(producer_broker)
        published: list[str] = []

        def publish() -> None:
            for key in keys:
                producer.send(fault_message("record_effect", key, work_ms=1))
                published.append(key)

        started = time.monotonic()
        thread = threading.Thread(target=publish, name="producer")
        thread.start()
        wait_for(lambda: len(effects(db)) >= JOBS // 3, "a third of the jobs to run", timeout=240, every=0.1)
        leader = cluster.leader_of(vhost, "faults")
        done_at_kill, killed_at = len(effects(db)), time.monotonic()
        leader.kill()
        # Recovery: the first job that runs after the kill, counted from the kill.
        wait_for(lambda: len(effects(db)) > done_at_kill + 50, "jobs running again after the kill", timeout=120,
                 every=0.05)
        recovered_after = time.monotonic() - killed_at
        thread.join(timeout=600)
        assert not thread.is_alive(), "the producer never finished"
        wait_for(lambda: len(effects(db)) >= JOBS, "every job to run", timeout=600, every=0.5)
        elapsed = time.monotonic() - started
        dead = [m.args[0] for m in dead_letters(live_url(cluster, env)) if hasattr(m, "args")]
        result = tally(f"cluster: leader node SIGKILL under load ({JOBS})", keys, effects(db), dead,
                       reported=producer.reported, killed=leader.node, recovered_after_s=round(recovered_after, 1),
                       seconds=round(elapsed, 1))
    finally:
        first.kill()
        second.kill()
        if not leader.alive():
            cluster.restart(leader)
    assert (result.lost, result.dead_lettered, result.executed) == (0, 0, JOBS)
    # At-least-once: a copy runs again only if it was held unacked by a worker of the killed node, or its
    # publish was unconfirmed and sent again (each counted in ``reported``).
    held = 2 * 4 * 2 * 3  # 2 workers x (prefetch 2 x 4 threads) x 3 bands
    assert result.executions - result.executed <= held + producer.reported
    # Both workers were connected to the killed node (every client's first URL) and reconnected by themselves.
    assert leader is cluster.nodes[0]
    assert "Restarting consumer" in first.text() and "Restarting consumer" in second.text()


def test_every_scheduled_slot_runs_once_across_a_node_kill(cluster, env, db, tmp_path):
    (tmp_path / "jobs.yaml").write_text(JOBS_YAML)
    own = {**env, "JOBS_CONFIG": str(tmp_path / "jobs.yaml"), "LOG_LEVEL": "INFO",
           "METRICS_PORT": str(free_port()), "METRICS_DIR": str(tmp_path / "metrics-s")}
    workers = start_workers(env, tmp_path / "w.log")
    scheduler = Process(["-m", "broker_jobs", "scheduler"], own, tmp_path / "scheduler.log").start()
    victim = cluster.nodes[0]  # every client's first URL: the scheduler and the worker are connected to it
    try:
        wait_for(lambda: len(effects(db)) >= 5, "five slots run", timeout=120, every=0.2)
        victim.kill()
        killed_at = time.time()
        wait_for(lambda: sum(1 for _key, (_runs, first, _last) in effect_times(db).items() if first > killed_at + 1)
                 >= 8, "eight slots run after the kill", timeout=180, every=0.2)
        scheduler.stop()
        text = scheduler.text()
        fired = set(re.findall(r"job beat (?:fired|caught up) slot (\S+)", text))
        wait_for(lambda: {k.split("@", 1)[1] for k in effects(db)} >= {slot_key(s) for s in fired},
                 "every fired slot to run", timeout=120, every=0.5)
        done = effects(db)
    finally:
        scheduler.kill()
        workers.kill()
        if not victim.alive():
            cluster.restart(victim)
    slots = sorted(slot_key(s) for s in fired)
    first, last = parse(slots[0]), parse(slots[-1])
    expected = {f"beat@{datetime.fromtimestamp(t, UTC).isoformat().replace('+00:00', 'Z')}"
                for t in range(int(first.timestamp()), int(last.timestamp()) + 1)}
    runs = {k: v for k, v in done.items() if k in expected}
    result = tally("cluster: scheduler every second across a node kill", expected, runs,
                   slots=len(expected))
    assert result.lost == 0 and result.executions == result.executed == len(expected), (expected - set(runs))


def slot_key(logged: str) -> str:
    return logged.split("@", 1)[-1]


def parse(slot: str) -> datetime:
    return datetime.fromisoformat(slot.replace("Z", "+00:00"))


def test_a_node_cut_off_pauses_its_clients_move_and_it_rejoins_by_itself(cluster, env, producer_broker, db,
                                                                         tmp_path):
    workers = start_workers(env, tmp_path / "w.log")
    victim = cluster.nodes[0]  # the first URL of every client
    cut_seconds = 20
    try:
        producer = Producer(producer_broker)
        before = [f"before-{i}" for i in range(200)]
        for key in before:
            producer.send(fault_message("record_effect", key))
        wait_for(lambda: len(effects(db)) >= 200, "the jobs sent before the cut to run", timeout=120)

        cut_at = time.monotonic()
        cluster.cut(victim, cut_seconds)
        # pause_minority: the cut node stops serving AMQP once it has noticed (within net_ticktime).
        wait_for(lambda: not victim.listening(), "the cut node to pause", timeout=NET_TICKTIME * 4, every=0.2)
        paused_after = time.monotonic() - cut_at
        during = [f"during-{i}" for i in range(200)]
        sent_at = time.monotonic()
        for key in during:
            producer.send(fault_message("record_effect", key))
        wait_for(lambda: len(effects(db)) >= 400, "the jobs sent during the cut to run", timeout=120, every=0.1)
        clients_back_after = time.monotonic() - sent_at
        wait_for(lambda: victim.listening(), "the node to serve again after the heal", timeout=cut_seconds + 120,
                 every=0.5)
        rejoined_after = time.monotonic() - cut_at
        wait_for(lambda: victim.node in cluster.running_nodes(cluster.nodes[1]), "the node back in the cluster",
                 timeout=60, every=0.5, ignore=(RuntimeError,))
        result = tally("cluster: a node cut off and healed", before + during, effects(db),
                       reported=producer.reported, paused_after_s=round(paused_after, 1),
                       clients_back_after_s=round(clients_back_after, 1), rejoined_after_s=round(rejoined_after, 1),
                       cut_seconds=cut_seconds)
    finally:
        workers.kill()
    assert (result.lost, result.executed) == (0, 400)
    assert clients_back_after < 60
