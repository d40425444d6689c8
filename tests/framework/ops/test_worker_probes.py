"""A real ``dramatiq`` worker's probes follow RabbitMQ: its vhost is deleted, then given back."""

from __future__ import annotations

import time

import pytest

from tests.support import UNREACHABLE, Process, wait_for
from tests.support.probes import compose_check, delete_vhost, own_vhost, probe, process_env, recreate_vhost, status


@pytest.mark.rabbitmq
def test_a_worker_that_loses_rabbitmq_turns_unready_within_30_s_and_ready_again_after_recovery(tmp_path):
    with own_vhost("bj-probe-worker") as url:
        env = process_env(url, tmp_path)
        worker = Process(["-m", "dramatiq", "broker_jobs.actors", "--processes", "2", "--threads", "2"], env,
                         tmp_path / "worker.log").start()
        try:
            wait_for(lambda: status(env, "/health/ready") == 200, "the worker to be ready", timeout=60)
            ready = probe(env, "/health/ready").json()
            workers = [p for p in ready["processes"] if p["role"] == "worker"]
            assert len(workers) == 2 and all(p["consumers"] and all(p["consumers"].values()) for p in workers)
            assert ready["served_by"]["role"] == "worker"
            assert status(env, "/health/live") == 200
            assert compose_check("worker", env) == 0  # docker-compose.yml's check, as written
            metrics = probe(env, "/metrics")
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
            assert status(env, "/") == 404 and status(env, "/health") == 404 and status(env, "/metricsx") == 404

            delete_vhost(url)
            cut = time.monotonic()
            wait_for(lambda: status(env, "/health/ready") == 503, "readiness to fail", timeout=30, every=0.2)
            turned = time.monotonic() - cut
            failing = probe(env, "/health/ready").json()
            assert any("not connected to RabbitMQ" in p for p in failing["problems"]), failing
            assert status(env, "/health/live") == 200  # Dramatiq reconnects by itself: no restart wanted
            assert compose_check("worker", env) != 0
            assert worker.alive()

            recreate_vhost(url, env)
            back = time.monotonic()
            wait_for(lambda: status(env, "/health/ready") == 200, "readiness after recovery", timeout=60,
                     every=0.2)
            print(f"worker readiness: 503 {turned:.1f} s after the vhost went, 200 "
                  f"{time.monotonic() - back:.1f} s after it came back")
        finally:
            worker.stop()


@pytest.mark.rabbitmq
def test_a_worker_master_takes_the_metrics_port_over_when_the_scheduler_holding_it_stops(tmp_path):
    with own_vhost("bj-probe-handover") as url:
        env = process_env(url, tmp_path)  # one host: one METRICS_PORT, one METRICS_DIR
        scheduler = Process(["-m", "broker_jobs", "scheduler"], env, tmp_path / "scheduler.log").start()
        worker: Process | None = None
        try:
            wait_for(lambda: status(env, "/health/live") == 200, "the scheduler to serve", timeout=60)
            worker = Process(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "1"], env,
                             tmp_path / "worker.log").start()
            worker.wait_for_log(r"is taken", timeout=60)
            # The scheduler serves the worker's probes too: both report into the host's directory.
            wait_for(lambda: {p["role"] for p in probe(env, "/health/ready").json()["processes"]}
                     == {"worker", "scheduler"}, "both processes reported", timeout=30)

            assert scheduler.stop() == 0
            stopped = time.monotonic()
            wait_for(lambda: probe(env, "/health/ready").json()["served_by"]["role"] == "worker",
                     "the worker master's exporter to take the port over", timeout=20, every=0.1,
                     ignore=(*UNREACHABLE, ValueError))
            took = time.monotonic() - stopped
            assert status(env, "/health/ready") == 200 and status(env, "/metrics") == 200
            print(f"worker exporter took the port over {took:.1f} s after the scheduler exited")
        finally:
            scheduler.stop()
            if worker is not None:
                worker.stop()
