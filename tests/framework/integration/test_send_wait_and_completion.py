"""``broker-jobs send --wait`` follows a job on a real worker to its end; shell completion offers real names.

The jobs live in a user module that only the jobs file names, on a ``dramatiq broker_jobs.actors`` worker.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, run_cli, start, stop, wait_for_log

pytestmark = pytest.mark.rabbitmq

USER_MODULE = '''
from broker_jobs import PermanentJobError, job


@job(queue="default", max_retries=0)
def {ok}(n: int) -> dict:
    """Doubles n."""
    return {{"doubled": n * 2}}


@job(queue="default", max_retries=0)
def {bad}() -> None:
    """Always fails for good."""
    raise PermanentJobError("the ledger does not balance")
'''


@pytest.fixture
def user_jobs(rabbitmq_url: str, tmp_path: Path) -> tuple[dict[str, str], str, str]:
    name, ok, bad = (f"{prefix}_{uuid.uuid4().hex[:8]}" for prefix in ("waitjobs", "double", "broken"))
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / f"{name}.py").write_text(USER_MODULE.format(ok=ok, bad=bad))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"modules: [{name}]\njobs:\n  - id: nightly-{ok}\n    actor: {ok}\n    args: [1]\n"
                    f"    cron: '0 3 * * *'\n")
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3",
           "JOBS_CONFIG": str(jobs), "PYTHONPATH": os.pathsep.join([str(tmp_path / "user"), str(ROOT)]),
           "PYTHONUNBUFFERED": "1", "METRICS_DIR": str(tmp_path / "metrics"), "METRICS_PORT": str(free_port())}
    return env, ok, bad


def test_send_wait_exits_0_with_the_report_or_6_with_the_error_once_the_worker_is_done(user_jobs, tmp_path):
    env, ok, bad = user_jobs
    log = tmp_path / "worker.log"
    worker = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2"], env, log)
    try:
        wait_for_log(log, "Worker process is ready for action", worker)
        done = run_cli("send", ok, "--args", "[21]", "--wait", "--timeout", "60", env=env, timeout=90)
        assert done.returncode == 0, done.stderr
        message_id, outcome = done.stdout.strip().splitlines()
        assert len(message_id) == 36 and outcome.startswith("succeeded in ") and '{"doubled": 42}' in outcome
        failed = run_cli("send", bad, "--wait", "--timeout", "60", env=env, timeout=90)
        assert failed.returncode == 6, failed.stderr
        assert len(failed.stdout.strip().splitlines()) == 1  # the message id, printed before the wait
        line = failed.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in line
        assert bad in line and "the ledger does not balance" in line and ("dead" in line or "failed" in line)
    finally:
        stop(worker)


def test_send_wait_gives_up_after_its_timeout_with_exit_7_and_says_the_job_did_not_start(user_jobs):
    env, ok, _ = user_jobs  # no worker: the message waits in its queue
    began = time.monotonic()
    done = run_cli("send", ok, "--args", "[1]", "--wait", "--timeout", "1", env=env, timeout=60)
    assert done.returncode == 7, done.stderr
    assert "did not finish within --timeout 1 s" in done.stderr and "not started yet" in done.stderr
    assert time.monotonic() - began < 30


def complete(env: dict[str, str], *words: str) -> list[str]:
    """What bash completion offers for the last of ``words`` (click's protocol, as the script calls it)."""
    line = ["broker-jobs", *words]
    done = run_cli(env={**env, "COMP_WORDS": " ".join(line), "COMP_CWORD": str(len(line) - 1),
                        "_BROKER_JOBS_COMPLETE": "bash_complete"})
    assert done.returncode == 0, done.stderr
    return [item.split(",", 1)[1] for item in done.stdout.split()]


def test_completion_offers_actors_schedule_ids_and_queues_from_the_jobs_file_and_its_modules(user_jobs):
    env, ok, bad = user_jobs
    for shell, marker in (("bash", "_BROKER_JOBS_COMPLETE=bash_complete"), ("zsh", "#compdef broker-jobs"),
                          ("fish", "complete --no-files --command broker-jobs")):
        script = run_cli("completion", shell, env=env)
        assert script.returncode == 0 and marker in script.stdout, (shell, script.stdout[:300])
    assert set(complete(env, "send", ok[:7])) >= {ok}
    assert "diagnostics" in complete(env, "send", "diag")
    assert complete(env, "jobs", "show", "nightly-") == [f"nightly-{ok}"]
    assert set(complete(env, "queues", "repair", "")) >= {"default", "etl", "sync", "maintenance"}
    assert set(complete(env, "dlq", "list", "--actor", bad[:6])) == {bad}
    # A broken environment gives no candidates, never an error on the user's terminal.
    assert complete({**env, "DATABASE_URL": "nope://"}, "jobs", "show", "") == []
