"""A stop sent to the worker's whole process group lets the running job finish, as a stop to the master does.

honcho (``make run``), Heroku, ``docker stop`` with a group-signalling init and
systemd's default ``KillMode=control-group`` send SIGTERM to every process of the
group at once, so each Dramatiq worker process gets it twice: from the manager and
forwarded by the Dramatiq master.  Dramatiq alone takes the second as "kill now"
(``broker_jobs.compat.OneStop`` is the fix).  Each test starts the worker the way
its user does, with the job's module brought in by the jobs file's ``modules:``,
sends a job that runs until its worker begins to stop and 4 s more (so it is in
flight whatever the machine's load), signals the group, and checks
from the outside: the job ran once and finished after the signal, its message was
acked (nothing back in the queue), its history row is ``succeeded``.

Whether a worker process handles the two copies apart is a race (two signals that
arrive before its handler runs count once): without the fix these tests failed in
4 of 5 runs here.  ``tests/framework/unit/test_compat.py`` pins the fix itself deterministically.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import (
    ROOT,
    count_events,
    events,
    free_port,
    log_text,
    queue_depth,
    run_cli,
    start,
    stop,
    wait_for,
    wait_for_log,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

QUEUE = "scaleout_shutdown"
AFTER_STOP_S = 4.0  # the job runs until its worker begins to stop, then this long: in flight at any load
DEADLINE_MS = 60_000  # WORKER_SHUTDOWN_TIMEOUT: far longer than the job, so only a kill can stop it


@pytest.fixture
def env(rabbitmq_url: str, tmp_path: Path) -> dict[str, str]:
    """What the worker, ``broker-jobs send`` and ``broker-jobs history`` share."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("modules: [tests.framework.scaleout.jobs]\njobs: []\n")
    (tmp_path / "events").mkdir()
    return {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
            "JOBS_CONFIG": str(jobs), "SCALEOUT_EVENTS": str(tmp_path / "events"),
            "PYTHONPATH": str(ROOT),  # the user's module; the `dramatiq` script does not look in its cwd
            "METRICS_DIR": str(tmp_path / "metrics"), "METRICS_PORT": str(free_port()),
            "WORKER_SHUTDOWN_TIMEOUT": str(DEADLINE_MS), "WEB_CONCURRENCY": "1", "ETL_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1"}


def run_job_and_stop(env: dict[str, str], proc: subprocess.Popen[bytes], log: Path, stop_signal: signal.Signals,
                     exit_code: int) -> None:
    """Send a job, signal ``proc``'s process group while the job runs, check the job ended well.

    Parameters:
      exit_code: ``proc``'s exit code after a stop that killed nothing.
    """
    key = f"group-{uuid.uuid4().hex[:8]}"
    try:
        wait_for_log(log, "Worker process is ready for action", proc)
        sent = run_cli("send", "shutdown_after_stop", "--args", json.dumps([key, [AFTER_STOP_S] * 2]), env=env)
        assert sent.returncode == 0, sent.stderr
        message_id = sent.stdout.strip()

        def mine() -> list:  # type: ignore[type-arg]
            return [e for e in events(Path(env["SCALEOUT_EVENTS"])) if e.key == key]

        wait_for(lambda: count_events(mine(), "start"), "the job to start", 60)
        signalled_at = time.time()
        os.killpg(proc.pid, stop_signal)
        # The event this test is about: the job finishing, timed from the signal.
        wait_for(lambda: count_events(mine(), "done"), "the job to finish after the signal", DEADLINE_MS / 1000)
        [started] = [e for e in mine() if e.kind == "start"]
        [stopping] = [e for e in mine() if e.kind.startswith("stopping:")]
        [done] = [e for e in mine() if e.kind == "done"]
        assert started.at < signalled_at < stopping.at < done.at, "the job was running when the signal came"
        print(f"{stop_signal.name} to the group: the job saw its worker stop {stopping.at - signalled_at:.2f} s "
              f"later and ended {done.at - signalled_at:.2f} s after the signal")

        # Then the command exits on its own, without killing anything.
        code = proc.wait(timeout=DEADLINE_MS / 1000)
        text = log_text(log)
        assert "Killing worker process" not in text, text[-3000:]
        assert code == exit_code, text[-3000:]
        # Acked: nothing for RabbitMQ to run again, nothing dead-lettered; it ran once.
        assert queue_depth(env["RABBITMQ_URL"], QUEUE) == 0 and queue_depth(env["RABBITMQ_URL"], QUEUE + ".XQ") == 0
        assert count_events(mine(), "start") == {message_id: 1}, mine()
        assert count_events(mine(), "done") == {message_id: 1}, mine()
        history = run_cli("history", "--json", env=env)
        assert history.returncode == 0, history.stderr
        [row] = [r for r in json.loads(history.stdout) if r["message_id"] == message_id]
        assert (row["status"], row["attempt"]) == ("succeeded", 1), row
    finally:
        stop(proc, timeout=30)  # honcho stops its children; a worker left alone stops its own


def test_kill_term_to_the_process_group_of_a_dramatiq_worker_lets_the_running_job_finish(
    env: dict[str, str], tmp_path: Path
):
    log = tmp_path / "worker.log"
    proc = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2",
                  "--worker-shutdown-timeout", str(DEADLINE_MS)], env, log)
    run_job_and_stop(env, proc, log, signal.SIGTERM, 0)  # kill -TERM -PGID, systemd's KillMode=control-group


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_stopping_honcho_with_the_repository_procfile_lets_the_running_job_finish(
    env: dict[str, str], tmp_path: Path, stop_signal: signal.Signals
):
    honcho = shutil.which("honcho", path=str(Path(sys.executable).parent))
    assert honcho, "honcho comes with the dev extras"
    (tmp_path / "empty.env").write_text("")
    log = tmp_path / "honcho.log"
    bin_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with log.open("ab") as out:
        # honcho in a session of its own: Ctrl-C reaches a terminal's foreground group, here honcho
        # alone (it starts each process in a session of its own); `kill PID` reaches honcho alone.
        proc = subprocess.Popen(
            [honcho, "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "-e", str(tmp_path / "empty.env"),
             "worker"],
            env={**os.environ, **env, "PATH": bin_path}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    run_job_and_stop(env, proc, log, stop_signal, 128 + stop_signal)  # honcho's own code after a stop signal
