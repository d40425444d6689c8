"""Graceful shutdown: a scheduler leader stopped with SIGTERM hands over at once."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.support import start, stop, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def status(env: dict[str, str]) -> dict:
    result = run_cli("jobs", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_leader_stopped_with_sigterm_releases_its_lease_and_the_standby_takes_over_before_it_expires(
    rabbitmq_url: str, tmp_path: Path
):
    config = tmp_path / "jobs.yaml"
    config.write_text("jobs:\n  - id: diag\n    actor: diagnostics\n    interval: {minutes: 30}\n")
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
           "JOBS_CONFIG": str(config), "METRICS_DIR": str(tmp_path / "metrics")}
    procs = {}
    for i in range(2):
        proc = start(["-m", "broker_jobs", "scheduler"], {**env, "METRICS_PORT": str(20300 + i)},
                     tmp_path / f"scheduler{i}.log")
        procs[proc.pid] = proc
    try:
        first = wait_for(lambda: (s := status(env))["leader"] and s["alive"] == 2 and s, "a leader", 60)
        old_leader, expires_in = first["leader"], float(first["lease_expires_in"])
        leader_pid = int(old_leader.split(":")[1])
        assert leader_pid in procs
        stopped_at = time.monotonic()
        os.kill(leader_pid, signal.SIGTERM)
        assert procs[leader_pid].wait(timeout=30) == 0
        wait_for(lambda: status(env)["leader"] not in (None, old_leader), "a new leader", 30)
        handover = time.monotonic() - stopped_at
        # Without the release the standby would wait for the old lease to expire.
        assert handover < expires_in, (handover, expires_in)
    finally:
        for proc in procs.values():
            stop(proc)
