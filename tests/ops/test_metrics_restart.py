"""A worker master started again wipes what its dead predecessors left (module of its own: its own vhost)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from broker_jobs import prometheus_env
from tests.api.conftest import free_port, spawn, stop, wait_until
from tests.ops.test_metrics import python, samples, value


@pytest.mark.rabbitmq
def test_a_restarted_worker_master_starts_from_clean_counters(service_env, tmp_path):
    env = {**service_env, "METRICS_DIR": str(tmp_path / "prom"), "METRICS_PORT": str(free_port())}
    argv = [sys.executable, "-m", "dramatiq", "broker_jobs.actors", "--processes", "2", "--threads", "1"]

    def run_worker(log: Path) -> subprocess.Popen[bytes]:
        proc = spawn(argv, env, log)
        wait_until(lambda: log.read_text(errors="replace").count("ready for action") >= 2, what="workers ready")
        return proc

    first = run_worker(tmp_path / "first.log")
    try:
        python("from broker_jobs.actors import diagnostics; diagnostics.send()", env)
        wait_until(lambda: value(samples(env["METRICS_PORT"]), "dramatiq_messages_total",
                                 queue_name="default", actor_name="diagnostics") == 1, what="one message counted")
    finally:
        stop(first)
    assert list((tmp_path / "prom").glob("counter_*.db"))  # the dead workers' files are still there...
    second = run_worker(tmp_path / "second.log")
    try:
        found = wait_until(lambda: samples(env["METRICS_PORT"]) or {"empty": True}, what="metrics served")
        # ...and gone once the new master's workers start: nothing counted twice, no stale gauges.
        assert value(found, "dramatiq_messages_total", queue_name="default", actor_name="diagnostics") is None
        assert all(prometheus_env._alive(int(p.stem.rsplit("_", 1)[1])) for p in (tmp_path / "prom").glob("*.db"))
    finally:
        stop(second)
