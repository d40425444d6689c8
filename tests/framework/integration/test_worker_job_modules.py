"""A worker started as deployed (``dramatiq broker_jobs.actors``) runs the jobs of the jobs file's ``modules:``.

The user's module lives in a directory that is only on ``PYTHONPATH``: nothing on
the worker's command line names it, so only the jobs file can bring it in.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT, free_port, kill, run_cli, start, stop, wait_for, wait_for_log

pytestmark = pytest.mark.rabbitmq

USER_MODULE = '''
from broker_jobs import job


@job(queue="default", max_retries=0)
def {actor}(n: int) -> dict:
    """A user's job, declared outside broker_jobs."""
    return {{"doubled": n * 2}}
'''


def user_env(url: str, tmp_path: Path, modules: list[str]) -> dict[str, str]:
    """A jobs file listing ``modules`` and a PYTHONPATH holding ``tmp_path/user``."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"modules: {json.dumps(modules)}\njobs: []\n")
    return {"RABBITMQ_URL": url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3", "JOBS_CONFIG": str(jobs),
            "PYTHONPATH": os.pathsep.join([str(tmp_path / "user"), str(ROOT)]), "PYTHONUNBUFFERED": "1",
            "METRICS_DIR": str(tmp_path / "metrics"), "METRICS_PORT": str(free_port())}


def test_a_job_of_a_module_listed_in_the_jobs_file_runs_on_a_plain_dramatiq_worker(rabbitmq_url: str,
                                                                                  tmp_path: Path):
    name = f"userjobs_{uuid.uuid4().hex[:8]}"
    actor = f"double_{uuid.uuid4().hex[:8]}"
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / f"{name}.py").write_text(USER_MODULE.format(actor=actor))
    env = user_env(rabbitmq_url, tmp_path, [name])
    log = tmp_path / "worker.log"
    worker = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "1"], env, log)
    try:
        wait_for_log(log, "Worker process is ready for action", worker)
        assert name not in " ".join(worker.args)  # type: ignore[arg-type]
        sent = run_cli("send", actor, "--args", "[21]", env=env)
        assert sent.returncode == 0, sent.stderr
        message_id = sent.stdout.strip()

        def finished() -> dict | None:
            result = run_cli("history", "--json", env=env)
            assert result.returncode == 0, result.stderr
            return next((r for r in json.loads(result.stdout)
                         if r["message_id"] == message_id and r["status"] in ("succeeded", "failed", "dead")), None)

        run = wait_for(finished, f"{actor} to finish", 60)
        assert run["status"] == "succeeded", (run, log.read_text()[-2000:])
        assert run["actor"] == actor and run["report"] == {"doubled": 42}
        dead = run_cli("dlq", "list", "--json", env=env)
        assert dead.returncode == 0, dead.stderr
        assert message_id not in {d["id"] for d in json.loads(dead.stdout)}
    finally:
        stop(worker)


def test_a_module_of_the_jobs_file_that_cannot_be_imported_stops_the_worker_with_one_line(rabbitmq_url: str,
                                                                                         tmp_path: Path):
    (tmp_path / "user").mkdir()
    env = user_env(rabbitmq_url, tmp_path, ["no_such_user_module_xyz"])
    log = tmp_path / "worker.log"
    worker = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "1"], env, log)
    try:
        code = worker.wait(timeout=120)
    finally:
        kill(worker)  # the group: a worker process outliving its master would keep consuming
    text = log.read_text()
    assert code != 0, text
    lines = [line for line in text.splitlines() if "no_such_user_module_xyz" in line]
    assert lines == [f"broker-jobs: {env['JOBS_CONFIG']}:1: modules[0]: cannot import 'no_such_user_module_xyz': "
                     "No module named 'no_such_user_module_xyz'"], text
    assert "Traceback" not in text
