"""A worker master started again wipes what its dead predecessors left (module of its own: its own vhost)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from broker_jobs.metrics import env as metrics_env
from tests.framework.ops.test_metrics import python, samples, value
from tests.support import UNREACHABLE, free_port, start, stop, wait_for, wait_for_log


@pytest.mark.rabbitmq
def test_a_restarted_worker_master_starts_from_clean_counters(service_env, tmp_path):
    env = {**service_env, "METRICS_DIR": str(tmp_path / "prom"), "METRICS_PORT": str(free_port())}
    argv = ["-m", "dramatiq", "broker_jobs.actors", "--processes", "2", "--threads", "1"]

    def run_worker(log: Path) -> subprocess.Popen[bytes]:
        proc = start(argv, env, log)
        wait_for_log(log, "ready for action", proc, count=2, timeout=30)
        return proc

    first = run_worker(tmp_path / "first.log")
    try:
        python("from broker_jobs.actors import diagnostics; diagnostics.send()", env)
        wait_for(lambda: value(samples(env["METRICS_PORT"]), "dramatiq_messages_total",
                               queue_name="default", actor_name="diagnostics") == 1, "one message counted",
                 timeout=30, every=0.1, ignore=UNREACHABLE)
    finally:
        stop(first, timeout=20)
    assert list((tmp_path / "prom").glob("counter_*.db"))  # the dead workers' files are still there...
    second = run_worker(tmp_path / "second.log")
    try:
        found = wait_for(lambda: samples(env["METRICS_PORT"]) or {"empty": True}, "metrics served", timeout=30,
                         every=0.1, ignore=UNREACHABLE)
        # ...and gone once the new master's workers start: nothing counted twice, no stale gauges.
        assert value(found, "dramatiq_messages_total", queue_name="default", actor_name="diagnostics") is None
        assert all(metrics_env._alive(int(p.stem.rsplit("_", 1)[1])) for p in (tmp_path / "prom").glob("*.db"))
    finally:
        stop(second, timeout=20)
