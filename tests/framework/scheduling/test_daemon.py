"""``broker-jobs scheduler --daemon``, ``scheduler status`` and ``scheduler stop``, as seed 004's users run them."""

from __future__ import annotations

import json
import os
import signal

import pytest

from broker_jobs.probes import process_running
from tests.support import free_port, run_cli, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.mark.parametrize("engine", ["broker-jobs", "apscheduler"])
def test_a_daemon_starts_reports_and_stops(rabbitmq_url, tmp_path, engine):
    (tmp_path / "jobs.yaml").write_text("jobs:\n  - {id: nightly, actor: diagnostics, cron: '0 3 * * *'}\n")
    pid_file = tmp_path / "run" / "scheduler.pid"
    env = {"RABBITMQ_URL": rabbitmq_url, "JOBS_CONFIG": str(tmp_path / "jobs.yaml"), "REDIS_URL": "",
           "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "SCHEDULER_PID_FILE": str(pid_file),
           "LOG_LEVEL": "INFO", "METRICS_DIR": str(tmp_path / "metrics"), "METRICS_PORT": str(free_port())}
    started = run_cli("scheduler", "--engine", engine, "--daemon", env=env)
    assert started.returncode == 0, started.stderr
    pid = int(pid_file.read_text())
    try:
        assert started.stdout.strip() == f"scheduler daemon started: pid {pid} (pid file {pid_file})"
        assert process_running(pid)

        def alive() -> dict | None:
            status = json.loads(run_cli("scheduler", "status", "--json", env=env).stdout)
            return status if status["alive"] == 1 else None

        status = wait_for(alive, "the daemon's heartbeat", 60)
        assert status["daemon"]["pid"] == pid
        assert [row["engine"] for row in status["instances"]] == [engine]
        again = run_cli("scheduler", "--daemon", env=env)
        assert again.returncode == 2 and f"already runs (pid {pid}" in again.stderr
        if engine == "apscheduler":  # APScheduler 3 cannot share its job store: a second instance is refused
            second = run_cli("scheduler", "--engine", "apscheduler", env={**env, "METRICS_PORT": str(free_port())})
            assert second.returncode == 2 and "another APScheduler engine" in second.stderr.splitlines()[-1]
        stopped = run_cli("scheduler", "stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f"scheduler daemon stopped (pid {pid})"
        assert not process_running(pid) and not pid_file.exists()
        assert "started" in (pid_file.with_suffix(".log")).read_text()
    finally:
        if process_running(pid):
            os.kill(pid, signal.SIGKILL)
    nothing = run_cli("scheduler", "stop", env=env)
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1
    assert "no scheduler daemon runs" in nothing.stderr and "Traceback" not in nothing.stderr
