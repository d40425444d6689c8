"""A real ``broker-jobs scheduler``: its probes follow RabbitMQ, the API's /health follows its liveness,
and the metrics port passes from one process of a host to another."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.framework.faults.test_database_outage import unreachable
from tests.support import SECRET, TEST_POSTGRES_URL, UNREACHABLE, Process, database, port_open, unavailable, wait_for
from tests.support.probes import compose_check, delete_vhost, own_vhost, probe, process_env, recreate_vhost, status


def scheduler(env: dict[str, str], log) -> Process:
    return Process(["-m", "broker_jobs", "scheduler"], env, log).start()


@pytest.mark.rabbitmq
def test_a_leading_scheduler_that_loses_rabbitmq_turns_unready_and_ready_again_after_recovery(tmp_path):
    with own_vhost("bj-probe-sched") as url:
        env = process_env(url, tmp_path)
        leader = scheduler(env, tmp_path / "scheduler.log")
        try:
            wait_for(lambda: status(env, "/health/ready") == 200, "the scheduler to be ready", timeout=60)
            ready = probe(env, "/health/ready").json()
            [state] = ready["processes"]
            assert state["role"] == "scheduler" and state["leader"] is True
            assert status(env, "/health/live") == 200 and status(env, "/metrics") == 200
            assert status(env, "/ready") == 404
            assert compose_check("scheduler", env) == 0  # docker-compose.yml's check, as written

            delete_vhost(url)
            wait_for(lambda: status(env, "/health/ready") == 503, "readiness to fail", timeout=30, every=0.2)
            failing = probe(env, "/health/ready").json()
            assert any("without a connection to RabbitMQ" in p for p in failing["problems"]), failing
            assert status(env, "/health/live") == 200
            assert compose_check("scheduler", env) != 0

            recreate_vhost(url, env)
            wait_for(lambda: status(env, "/health/ready") == 200, "readiness after recovery", timeout=60, every=0.2)
        finally:
            leader.stop()


@pytest.mark.rabbitmq
def test_a_scheduler_whose_database_lease_is_unreachable_turns_unready_and_ready_again(tmp_path):
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    with own_vhost("bj-probe-db") as url, database(TEST_POSTGRES_URL, "bj_probe") as db:
        env = process_env(url, tmp_path, DATABASE_URL=db)  # no REDIS_URL: the lease lives in this database
        instance = scheduler(env, tmp_path / "scheduler.log")
        try:
            wait_for(lambda: status(env, "/health/ready") == 200, "the scheduler to be ready", timeout=60)
            with unreachable(db):
                wait_for(lambda: status(env, "/health/ready") == 503, "readiness to fail", timeout=30, every=0.2)
                failing = probe(env, "/health/ready").json()
                assert any("lease store" in p for p in failing["problems"]), failing
                assert status(env, "/health/live") == 200  # the loop still turns: no restart wanted
            wait_for(lambda: status(env, "/health/ready") == 200, "readiness after recovery", timeout=60, every=0.2)
        finally:
            instance.stop()


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The API in-process, checking every 0.5 s, beside the environment a scheduler of the same system uses."""
    from broker_jobs.api.app import create_app
    from broker_jobs.api.health import HealthMonitor
    from broker_jobs.settings import Settings

    with own_vhost("bj-probe-health") as url:
        env = process_env(url, tmp_path)
        settings = Settings(api_jwt_secret=SECRET, rabbitmq_url=url, database_url=env["DATABASE_URL"],
                            jobs_config=env["JOBS_CONFIG"])
        monitor = HealthMonitor(settings, interval=0.5, timeout=2)
        with TestClient(create_app(settings, monitor=monitor, load_jobs=False)) as client:
            yield client, env
        monitor.stop()


@pytest.mark.rabbitmq
def test_health_is_not_healthy_while_no_scheduler_instance_is_alive(api, tmp_path):
    client, env = api

    def report() -> dict:
        return client.get("/health").json()

    wait_for(lambda: report()["broker"]["ok"] and report()["database"]["ok"], "the first checks")
    before = report()
    assert before["healthy"] is False and before["status"] == "degraded"
    assert before["schedulers"]["running"] == 0

    instance = scheduler(env, tmp_path / "scheduler.log")
    try:
        healthy = wait_for(lambda: (r := report())["healthy"] and r, "healthy with a scheduler running", timeout=60)
        assert healthy["schedulers"]["running"] == 1 and healthy["schedulers"]["total"] == 1
        assert healthy["status"] == "healthy"
    finally:
        assert instance.stop() == 0
    # Its heartbeat ages out (15 s): nothing fires any more, and /health says so.
    gone = wait_for(lambda: not (r := report())["healthy"] and r, "not healthy once it stopped", timeout=60)
    assert gone["schedulers"] == {"total": 1, "running": 0, "errors": 0} and gone["status"] == "degraded"


@pytest.mark.rabbitmq
def test_when_the_process_holding_the_metrics_port_stops_another_process_of_the_host_takes_it_over(tmp_path):
    with own_vhost("bj-probe-takeover") as url:
        env = process_env(url, tmp_path)  # one host: one METRICS_PORT, one METRICS_DIR
        first = scheduler(env, tmp_path / "first.log")
        second: Process | None = None
        try:
            wait_for(lambda: status(env, "/metrics") == 200, "the first scheduler to serve", timeout=60)
            assert first.proc is not None
            assert probe(env, "/health/live").json()["served_by"]["pid"] == first.proc.pid
            second = scheduler(env, tmp_path / "second.log")
            second.wait_for_log(r"is taken", timeout=60)
            # Both report through the host's directory, whoever serves.
            wait_for(lambda: len(probe(env, "/health/ready").json()["processes"]) == 2, "both states", timeout=30)

            assert first.stop() == 0  # SIGTERM, as systemd or a container runtime sends it
            stopped = time.monotonic()
            assert second.proc is not None

            def served_by_second() -> bool:
                answer = probe(env, "/health/live")
                return answer.status_code == 200 and answer.json()["served_by"]["pid"] == second.proc.pid

            wait_for(served_by_second, "the second scheduler to take the port over", timeout=20, every=0.1,
                     ignore=(*UNREACHABLE, ValueError))
            took = time.monotonic() - stopped
            # The new holder serves the host's series: its own leadership, once it has taken the lease.
            wait_for(lambda: "broker_jobs_scheduler_leader 1.0" in probe(env, "/metrics").text,
                     "the leader gauge from the second scheduler", timeout=30, ignore=UNREACHABLE)
            print(f"metrics port taken over {took:.1f} s after the holder exited")
        finally:
            first.stop()
            if second is not None:
                second.stop()
