"""How the probe server judges a host from its processes' state files (pure parts, and the files themselves)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from broker_jobs import probes
from broker_jobs.middleware.heartbeat import worker_state
from tests.support import wait_for


def state(role: str = "worker", *, live: bool = True, ready: bool = True, age: float = 0.0, **extra) -> dict:
    return {"role": role, "pid": 4242, "at": 1000.0 - age, "live": live, "ready": ready, "problems": [], **extra}


def test_a_host_is_ready_when_every_process_reports_ready():
    verdict = probes.evaluate([state(), state("scheduler")], "worker", now=1000.0)
    assert verdict["live"] and verdict["ready"] and verdict["problems"] == []


def test_one_unready_process_makes_the_host_unready_but_still_live():
    unready = state(ready=False, problems=["not connected to RabbitMQ for default"])
    verdict = probes.evaluate([state(), unready], "worker", now=1000.0)
    assert verdict["live"] and not verdict["ready"]
    assert verdict["problems"] == ["worker 4242: not connected to RabbitMQ for default"]


def test_a_process_that_stopped_writing_is_wedged_not_live():
    verdict = probes.evaluate([state(age=probes.STALE_AFTER + 1)], "worker", now=1000.0)
    assert not verdict["live"] and not verdict["ready"]
    assert "no state written" in verdict["problems"][0]


def test_a_server_whose_own_processes_never_reported_is_live_but_not_ready():
    verdict = probes.evaluate([state("scheduler")], "worker", now=1000.0)
    assert verdict["live"] and not verdict["ready"]
    assert verdict["problems"] == ["no worker process has reported yet"]


def test_only_the_two_probe_paths_are_answered(tmp_path):
    probes.write_state(tmp_path, "worker", state())
    assert probes.respond("/health/live", tmp_path, "worker")[0] == 200
    assert probes.respond("/health/ready?verbose=1", tmp_path, "worker")[0] == 200
    for path in ("/", "/health", "/health/readyz", "/anything"):
        assert probes.respond(path, tmp_path, "worker") is None


def test_the_file_of_a_dead_process_is_deleted_and_ignored(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = probes.state_path(tmp_path, "worker", int(gone.stdout))
    dead.write_text(json.dumps(state(ready=False)))
    probes.write_state(tmp_path, "scheduler", state("scheduler"))
    states = probes.read_states(tmp_path)
    assert [(s["role"], s["pid"]) for s in states] == [("scheduler", os.getpid())]
    assert not dead.exists()
    answer = probes.respond("/health/ready", tmp_path, "scheduler")
    assert answer is not None and answer[0] == 200 and json.loads(answer[1])["served_by"]["pid"] == os.getpid()


def test_a_beat_writes_until_stopped_then_removes_its_file(tmp_path):
    beat = probes.Beat(tmp_path, "scheduler", lambda: {"live": True, "ready": False, "problems": ["x"]}).start()
    path = probes.state_path(tmp_path, "scheduler")
    wait_for(path.exists, "the first beat", timeout=10, every=0.05)
    assert json.loads(path.read_text())["problems"] == ["x"]
    beat.stop()
    assert not path.exists()


def test_a_stub_worker_reports_its_threads_and_consumers(stub_worker):
    stub_worker.broker.declare_queue("probe-test")
    # The consumer thread opens its consumer once it runs.
    reported = wait_for(lambda: (r := worker_state(stub_worker))["ready"] and r, "a ready stub worker", timeout=10)
    assert reported["live"]
    assert reported["threads"] == {"alive": 2, "total": 2}
    assert reported["consumers"]["probe-test"] is True
    assert not worker_state(stub_worker, stopping=True)["ready"]
